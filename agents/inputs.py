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
from collections.abc import Mapping

from agents.runtime.base import StagedInput
from storage.cid import CID

ENV_VAR = "MYCEL_INPUTS"


def describe_inputs(staged: Mapping[str, StagedInput], inputs: dict[str, CID]) -> dict[str, dict[str, object]]:
    """Per input as the workspace staged it: path (relative), cid, kind, size in bytes.

    Kind and size come from the staging (the input cache's entry records them), not from
    a walk of ``in/``: a mounted input's placeholder is empty until the sandbox mounts it."""
    described: dict[str, dict[str, object]] = {}
    for name, cid in sorted(inputs.items()):
        entry = staged[name]
        described[name] = {"path": name, "cid": str(cid), "kind": entry.kind, "size": entry.size}
    return described


def inputs_env(staged: Mapping[str, StagedInput], inputs: dict[str, CID]) -> dict[str, str]:
    """The environment entry that tells the agent its inputs (compact JSON)."""
    return {ENV_VAR: json.dumps(describe_inputs(staged, inputs), separators=(",", ":"), sort_keys=True)}
