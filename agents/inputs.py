"""``MYCEL_INPUTS``: what the agent was given, so it need not guess names or shapes.

Each input named ``NAME`` in the job appears at ``$MYCEL_IN/NAME`` (``/in/NAME`` for wasm):
a file CID as a file of that name, a directory CID as a directory. The environment variable
``MYCEL_INPUTS`` holds JSON ``{NAME: {"path", "cid", "kind", "size"}}``: the path relative to
``$MYCEL_IN``, the CID, "file" or "directory", and the size in bytes. It is an environment
variable rather than a file so that ``$MYCEL_IN`` holds exactly the inputs: agents that walk
it (the wordcount example does) see nothing the job did not send. Its size is bounded: at
most 256 inputs (JobSpec), each name a file name (NAME_MAX, 255 bytes), so it stays under the
kernel's 128 KiB limit on one environment string.

The node cannot see whether an agent reads an input; what binds it is the receipt, which
names every input (name -> CID) the run was given.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from agents.runtime.sandbox.outputs import scan_tree
from storage.cid import CID

ENV_VAR = "MYCEL_INPUTS"


def describe_inputs(directory: Path, inputs: dict[str, CID]) -> dict[str, dict[str, object]]:
    """Per input as staged under ``directory``: path (relative), cid, kind, size in bytes."""
    described: dict[str, dict[str, object]] = {}
    for name, cid in sorted(inputs.items()):
        path = directory / name
        is_dir = path.is_dir()
        size = scan_tree([os.fspath(path)]).bytes if is_dir else path.stat().st_size
        described[name] = {"path": name, "cid": str(cid), "kind": "directory" if is_dir else "file", "size": size}
    return described


def inputs_env(directory: Path, inputs: dict[str, CID]) -> dict[str, str]:
    """The environment entry that tells the agent its inputs (compact JSON)."""
    return {ENV_VAR: json.dumps(describe_inputs(directory, inputs), separators=(",", ":"), sort_keys=True)}
