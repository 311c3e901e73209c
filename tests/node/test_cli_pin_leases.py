"""`mycel pin ls` shows when remote pins expire; `mycel gc` drops expired ones (issue 12)."""

from __future__ import annotations

import io
import time
from pathlib import Path

from storage.blockstore import BlockStore
from storage.files import add_stream
from storage.leases import PinLease
from tests.support import CliRunner


def test_pin_ls_shows_expiry_and_gc_drops_expired_remote_pins(mycel: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("mine")
    put = mycel("put", tmp_path / "mine.txt")
    assert put.returncode == 0, put.stderr
    mine = put.stdout.strip()
    now = int(time.time())
    with BlockStore(tmp_path / "mycel-data" / "blocks") as store:  # what a remote job left here
        current = add_stream(store, io.BytesIO(b"input of a job"), pin=False).cid
        store.pin(current, "job a", lease=PinLease("12D3KooWRequester", now + 3600))
        stale = add_stream(store, io.BytesIO(b"result of an old job"), pin=False).cid
        store.pin(stale, "result b", lease=PinLease("12D3KooWRequester", now - 1))

    lines = {line.split("\t")[0]: line.split("\t") for line in mycel("pin", "ls").stdout.splitlines()}
    assert lines[mine][1:3] == ["recursive", "permanent"]
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600))
    assert lines[str(current)][2:] == [f"expires {when} (for 12D3KooWRequester)", "job a"]
    assert str(stale) in lines

    gc = mycel("gc")
    assert gc.returncode == 0 and "removed 1 blocks" in gc.stdout and "1 expired remote pin(s) dropped" in gc.stdout
    listed = mycel("pin", "ls").stdout
    assert str(stale) not in listed and str(current) in listed and mine in listed
    with BlockStore(tmp_path / "mycel-data" / "blocks") as store:
        assert store.missing_blocks(stale) == [stale] and store.missing_blocks(current) == []
