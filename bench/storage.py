"""Storage benchmark: import/export throughput of 1 GiB against raw sha256 + raw LMDB.

Baseline (measured in the same run, same disk, same LMDB settings, same 32 MiB
transactions): read the file in 256 KiB blocks, sha256 each, put it in LMDB keyed by
its CID; export = get each block, sha256 it, write it out. mycelnet does the same work
plus UnixFS (dag-pb tree, CIDs, size accounting, pin) and verified, atomic export.

Each phase runs in a child process so peak memory (VmHWM) is that phase's own.
Usage: python bench/storage.py [--size-mib 1024] [--dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CHUNK = 256 * 1024
BATCH = 32 << 20
REPO = Path(__file__).resolve().parent.parent


def _status_mib(field: str) -> float:
    match = re.search(field + r":\s+(\d+)", Path("/proc/self/status").read_text())
    return int(match.group(1)) / 1024 if match else float("nan")


class _AnonSampler:
    """Peak anonymous memory (heap), sampled every 5 ms.

    VmHWM also counts LMDB's memory-mapped file pages, which are page cache the kernel
    can drop at will; the heap is what the import itself holds on to.
    """

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _status_mib("RssAnon"))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak, _status_mib("RssAnon"))


_SAMPLER: _AnonSampler | None = None


def _peak_rss_mib() -> float:
    return _status_mib("VmHWM")


def _memory() -> dict[str, float]:
    return {"peak_rss_mib": _peak_rss_mib(), "peak_anon_mib": _SAMPLER.stop() if _SAMPLER else float("nan")}


def _open_env(path: Path) -> object:
    import lmdb

    # the same settings BlockStore uses
    return lmdb.open(str(path), map_size=1 << 30, max_dbs=4, sync=True, metasync=True, readahead=False)


def phase_baseline_import(source: Path, target: Path) -> dict[str, float]:
    env = _open_env(target)
    db = env.open_db(b"blocks")  # type: ignore[attr-defined]
    prefix = b"\x01\x55\x12\x20"
    start = time.perf_counter()
    pending: list[tuple[bytes, bytes]] = []
    size = 0
    keys = []
    with open(source, "rb", buffering=0) as stream:
        while chunk := stream.read(CHUNK):
            key = prefix + hashlib.sha256(chunk).digest()
            keys.append(key)
            pending.append((key, chunk))
            size += len(chunk)
            if size >= BATCH:
                _commit(env, db, pending)
                pending, size = [], 0
    _commit(env, db, pending)
    elapsed = time.perf_counter() - start
    (target / "keys.bin").write_bytes(b"".join(keys))
    env.close()  # type: ignore[attr-defined]
    return {"seconds": elapsed, **_memory()}


def _commit(env: object, db: object, pending: list[tuple[bytes, bytes]]) -> None:
    import lmdb

    while True:
        try:
            with env.begin(write=True, db=db) as txn:  # type: ignore[attr-defined]
                for key, value in pending:
                    txn.put(key, value, overwrite=False)
            return
        except lmdb.MapFullError:
            env.set_mapsize(env.info()["map_size"] * 2)  # type: ignore[attr-defined]


def phase_baseline_export(target: Path, out: Path) -> dict[str, float]:
    env = _open_env(target)
    db = env.open_db(b"blocks")  # type: ignore[attr-defined]
    raw_keys = (target / "keys.bin").read_bytes()
    keys = [raw_keys[i : i + 36] for i in range(0, len(raw_keys), 36)]
    start = time.perf_counter()
    with open(out, "wb") as sink:
        for key in keys:
            with env.begin(db=db) as txn:  # type: ignore[attr-defined]
                data = txn.get(key)
            if hashlib.sha256(data).digest() != key[4:]:
                raise SystemExit("baseline block corrupt")
            sink.write(data)
    return {"seconds": time.perf_counter() - start, **_memory()}


def phase_mycel_import(source: Path, target: Path) -> dict[str, float | str]:
    from storage.blockstore import BlockStore
    from storage.files import add_path

    with BlockStore(target) as store:
        start = time.perf_counter()
        node = add_path(store, source)
        elapsed = time.perf_counter() - start
    return {"seconds": elapsed, **_memory(), "cid": str(node.cid)}


def phase_mycel_export(target: Path, cid: str, out: Path) -> dict[str, float]:
    from storage.blockstore import BlockStore
    from storage.cid import CID
    from storage.files import get_path

    with BlockStore(target) as store:
        start = time.perf_counter()
        get_path(store, CID.parse(cid), out)
        elapsed = time.perf_counter() - start
    return {"seconds": elapsed, **_memory()}


PHASES = {
    "baseline-import": phase_baseline_import,
    "baseline-export": phase_baseline_export,
    "mycel-import": phase_mycel_import,
    "mycel-export": phase_mycel_export,
}


def _child(phase: str, *args: str) -> dict[str, float | str]:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", phase, *args], cwd=REPO, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory (default: a temp dir)")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.phase:
        global _SAMPLER
        _SAMPLER = _AnonSampler()
        sys.path.insert(0, str(REPO))
        print(json.dumps(PHASES[opts.phase](*[Path(a) if "/" in a else a for a in opts.args])))  # type: ignore[operator]
        return

    work = Path(tempfile.mkdtemp(prefix="mycel-bench-", dir=opts.dir))
    try:
        source = work / "random.bin"
        size = opts.size_mib << 20
        with open(source, "wb") as out:
            for _ in range(0, size, 8 << 20):
                out.write(os.urandom(min(8 << 20, size)))
        mib = size / (1 << 20)
        base_imp = _child("baseline-import", str(source), str(work / "baseline"))
        ours_imp = _child("mycel-import", str(source), str(work / "mycel"))
        base_exp = _child("baseline-export", str(work / "baseline"), str(work / "baseline.out"))
        ours_exp = _child("mycel-export", str(work / "mycel"), str(ours_imp["cid"]), str(work / "mycel.out"))
        if (work / "mycel.out").stat().st_size != size:
            raise SystemExit("export size mismatch")
        rows = [
            ("import", base_imp, ours_imp),
            ("export", base_exp, ours_exp),
        ]
        print(f"storage benchmark: {mib:.0f} MiB of random data, 256 KiB blocks, LMDB sync=on, 32 MiB transactions")
        print(f"{'':8}{'baseline MB/s':>15}{'mycelnet MB/s':>15}{'ratio':>8}{'peak RSS MiB':>14}{'peak heap MiB':>15}")
        for name, base, ours in rows:
            base_rate = size / 1e6 / float(base["seconds"])
            our_rate = size / 1e6 / float(ours["seconds"])
            rss, heap = float(ours["peak_rss_mib"]), float(ours["peak_anon_mib"])
            print(f"{name:8}{base_rate:15.1f}{our_rate:15.1f}{our_rate / base_rate:8.2f}{rss:14.1f}{heap:15.1f}")
        for name, base, _ in rows:
            rss, heap = float(base["peak_rss_mib"]), float(base["peak_anon_mib"])
            print(f"baseline {name}: peak RSS {rss:.1f} MiB, peak heap {heap:.1f} MiB")
        print("peak RSS includes LMDB's memory-mapped pages (page cache); heap is the process's own memory")
        print(f"root CID {ours_imp['cid']}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
