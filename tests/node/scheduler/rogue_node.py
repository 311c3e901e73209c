"""A hostile node for tests: a real node process whose executor fabricates every result.

Run exactly as ``mycel`` is (``python -m tests.node.scheduler.rogue_node node start ...``).
Before the CLI starts, the executor's output import is wrapped to add a file the agent never
wrote, so the node stores, announces and signs (with its own valid key) a result that is not
what the agent computed. Nothing in the node's code knows about this: the only way to catch
it is to compare its result with another node's, which is what the tests check.
"""

from __future__ import annotations

import sys
from typing import Any

from agents.executor import Executor

_honest_import = Executor._import


def _fabricating_import(self: Executor, request: Any, workspace: Any) -> Any:
    (workspace.out / "fabricated.txt").write_text("not what the agent computed\n")
    return _honest_import(self, request, workspace)


Executor._import = _fabricating_import  # type: ignore[method-assign]

if __name__ == "__main__":
    from node.cli.main import main

    sys.exit(main())
