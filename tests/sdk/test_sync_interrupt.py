"""Ctrl-C during a blocking client's call: the call unwinds (or is abandoned after the grace),
the interrupt reaches the caller, and the client's next call and close still work.

Each case runs in its own interpreter, because it delivers a real SIGINT to the main thread
and what an abandoned call leaves would otherwise only show at interpreter exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.support import REPO_ROOT

SCRIPT = """
import asyncio, os, signal, sys, threading, time
import sdk.sync
from sdk.sync import SyncClient

sdk.sync.INTERRUPT_GRACE = {grace}
started = threading.Event()

async def call() -> str:
    started.set()
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        await asyncio.sleep({unwind})  # how long the cancelled call takes to unwind
        print("unwound")
        raise
    return "finished"

threading.Thread(target=lambda: (started.wait(10), os.kill(os.getpid(), signal.SIGINT)), daemon=True).start()
client = SyncClient("http://127.0.0.1:9")
began = time.monotonic()
try:
    client._run(call())
except KeyboardInterrupt:
    print("interrupted after", round(time.monotonic() - began, 1))
print("next call:", client._run(asyncio.sleep(0, "answered")) if not client._abandoned else "abandoned")
client.close()
print("closed")
"""


def _run(grace: float, unwind: float) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(SCRIPT).format(grace=grace, unwind=unwind)
    return subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)


def test_a_call_that_unwinds_at_once_after_ctrl_c_leaves_the_client_usable_even_with_no_grace() -> None:
    # no grace at all: the cancelled call still finishes in the same loop turn as the wait ends,
    # which once left the loop's stop callback queued and stopped the next call (close) mid-way
    for grace in (0.0, 1.0):
        done = _run(grace, unwind=0)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0] == "unwound" and lines[1].startswith("interrupted after 0."), done.stdout
        assert lines[2:] == ["next call: answered", "closed"] and done.stderr == "", done.stdout + done.stderr


def test_a_call_that_does_not_unwind_in_the_grace_is_abandoned_quietly() -> None:
    done = _run(grace=0.2, unwind=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["interrupted after 0.2", "next call: abandoned", "closed"], done.stdout
    assert done.stderr == "", done.stderr


def test_a_call_still_unwinding_after_the_grace_gets_one_more_at_close() -> None:
    """On a loaded machine the grace can pass mid-unwinding; left so, the half-unwound call was
    torn down at exit with "Exception ignored ... generator didn't stop after athrow()"."""
    done = _run(grace=0.3, unwind=0.4)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["interrupted after 0.3", "next call: abandoned", "unwound", "closed"], (
        done.stdout
    )
    assert done.stderr == "", done.stderr
