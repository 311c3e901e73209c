"""Stress run for LMDB map growth, run in a child process by test_map_growth.py.

Writers force the map of a block store and of record tables to double many times
while readers on an asyncio loop and in threads read what is committed and compare
every byte. A remap under a live reader can crash the process outright, which is why
the tests run this in a child and check its exit status and report.

Usage: python -m tests.storage.growth_stress DIR
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import threading
from pathlib import Path

from storage.blockstore import BlockStore
from storage.cid import CID
from storage.records import RecordTables

BLOCK = 48 << 10
BLOCKS = 900  # ~42 MiB: a 64 KiB map doubles 10 times
RECORDS = 2000


def content(index: int, size: int) -> bytes:
    seed = hashlib.sha256(str(index).encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


class Shared:
    def __init__(self) -> None:
        self.committed_blocks = 0
        self.committed_records = 0
        self.done = threading.Event()
        self.reads = 0
        self.errors: list[str] = []
        self.lock = threading.Lock()


def read_once(store: BlockStore, tables: RecordTables, shared: Shared, salt: int) -> None:
    blocks, records = shared.committed_blocks, shared.committed_records
    try:
        if blocks:
            index = (salt * 7919) % blocks
            data = content(index, BLOCK)
            if store.get(CID.for_block(data)) != data:
                shared.errors.append(f"block {index}: wrong bytes")
            store.stats()
        if records:
            index = (salt * 104729) % records
            record = tables.get("a", f"k{index}")
            if record is None or record["blob"] != content(index, 20_000):
                shared.errors.append(f"record {index}: wrong or missing")
            tables.count("a")
    except Exception as exc:  # every failure is reported, none may happen
        shared.errors.append(f"{type(exc).__name__}: {exc}")
    with shared.lock:
        shared.reads += 1


def thread_reader(store: BlockStore, tables: RecordTables, shared: Shared, offset: int) -> None:
    salt = offset
    while not shared.done.is_set():
        read_once(store, tables, shared, salt)
        salt += 1


async def loop_reader(store: BlockStore, tables: RecordTables, shared: Shared) -> None:
    salt = 10**6
    while not shared.done.is_set():
        read_once(store, tables, shared, salt)
        salt += 1
        await asyncio.sleep(0)


def write_blocks(store: BlockStore, shared: Shared) -> None:
    for index in range(BLOCKS):
        data = content(index, BLOCK)
        store.put(CID.for_block(data), data)
        shared.committed_blocks = index + 1


def write_records(tables: RecordTables, shared: Shared) -> None:
    for index in range(RECORDS):
        tables.put("a", f"k{index}", {"blob": content(index, 20_000)})
        shared.committed_records = index + 1


async def main(directory: Path) -> dict[str, object]:
    store = BlockStore(directory / "blocks", map_size=64 << 10, sync=False)
    tables = RecordTables(directory / "records", ("a",), map_size=64 << 10)
    shared = Shared()
    readers = [threading.Thread(target=thread_reader, args=(store, tables, shared, i)) for i in range(2)]
    for thread in readers:
        thread.start()
    on_loop = asyncio.create_task(loop_reader(store, tables, shared))
    try:
        await asyncio.gather(
            asyncio.to_thread(write_blocks, store, shared), asyncio.to_thread(write_records, tables, shared)
        )
    finally:
        shared.done.set()
        await on_loop
        for thread in readers:
            thread.join()
    report = {
        "block_map": store.stats().map_size,
        "record_map": tables._lmdb.map_size(),
        "block_remaps": store._lmdb.remaps,
        "record_remaps": tables._lmdb.remaps,
        "reads": shared.reads,
        "errors": shared.errors[:5],
        "blocks_ok": all(store.get(CID.for_block(content(i, BLOCK))) == content(i, BLOCK) for i in range(BLOCKS)),
    }
    store.close()
    tables.close()
    return report


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(Path(sys.argv[1])))))
