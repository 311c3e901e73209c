"""A finished ``mycel`` process ends without CPython's teardown, its output intact."""

from __future__ import annotations

import subprocess
import sys

from tests.support import REPO_ROOT

PROGRAM = """
import atexit, logging, sys
from node.cli.common import exit_without_teardown
atexit.register(lambda: sys.stderr.write("teardown ran\\n"))
logging.basicConfig(stream=sys.stderr, format="%(message)s")
sys.stdout.write("unflushed line")  # no newline: still in the buffer of a pipe
logging.getLogger("t").warning("logged")
exit_without_teardown(7)
"""


def test_exit_keeps_the_code_and_the_output_and_skips_teardown() -> None:
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert done.returncode == 7
    assert done.stdout == "unflushed line"
    assert done.stderr == "logged\n"  # atexit handlers (the interpreter's teardown) never ran


def test_the_cli_module_exits_with_the_commands_code() -> None:
    def mycel(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "node.cli.main", *args]
        return subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)

    usage, ok = mycel("no-such-command"), mycel("--help")
    assert usage.returncode != 0 and usage.stderr.count("\n") == 1
    assert ok.returncode == 0 and ok.stdout.startswith("Usage: mycel")
