"""``$MYCEL_IN/.inputs.json``: what the agent was given, so it need not guess names or shapes.

Each input named ``NAME`` in the job appears at ``$MYCEL_IN/NAME`` (``/in/NAME`` for wasm):
a file CID as a file of that name, a directory CID as a directory. The manifest lists, per
input, its path relative to ``$MYCEL_IN``, its CID, whether it is a file or a directory, and
its size in bytes. Input names never start with a dot, so the manifest cannot collide
with one. The node cannot see whether an agent reads an input; what binds it is the
receipt, which names every input (name -> CID) the run was given.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from agents.runtime.sandbox.outputs import scan_tree
from storage.cid import CID

INPUTS_FILE = ".inputs.json"


def describe_inputs(directory: Path, inputs: dict[str, CID]) -> dict[str, dict[str, object]]:
    """Per input: path (relative to $MYCEL_IN), cid, kind ("file" or "directory"), size (bytes)."""
    described: dict[str, dict[str, object]] = {}
    for name, cid in sorted(inputs.items()):
        path = directory / name
        is_dir = path.is_dir()
        size = scan_tree([os.fspath(path)]).bytes if is_dir else path.stat().st_size
        described[name] = {"path": name, "cid": str(cid), "kind": "directory" if is_dir else "file", "size": size}
    return described


def write_inputs_manifest(directory: Path, inputs: dict[str, CID]) -> None:
    """Write INPUTS_FILE into the staged input directory (before it is made read-only)."""
    body = json.dumps({"inputs": describe_inputs(directory, inputs)}, indent=1, sort_keys=True)
    (directory / INPUTS_FILE).write_text(body + "\n")
