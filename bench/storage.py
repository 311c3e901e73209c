"""Storage benchmark: import/export throughput of 1 GiB against raw sha256 + raw LMDB.

Baseline (measured in the same run, same disk, same LMDB settings, same 32 MiB
transactions): read the file in 256 KiB blocks, sha256 each, put it in LMDB keyed by
its CID; export = get each block, sha256 it, write it out. mycelnet does the same work
plus UnixFS (dag-pb tree, CIDs, size accounting, pin) and verified, atomic export.

mycelnet and the baseline run alternately, --rounds rounds (the order swapped each round, on
fresh stores), so a loaded machine's drift hits both alike; each figure is the median with the
spread (min-max) over rounds, the ratio taken round by round. Each phase runs in a child
process so peak memory (VmHWM) is that phase's own; CPU seconds (user + system, all threads)
are the phase's own too, next to its wall time.

Usage: python bench/storage.py [--size-mib 1024] [--rounds 3] [--dir DIR] [--quick]
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.stats import Spread, machine_note, ratios, rotated, spread  # noqa: E402

CHUNK = 256 * 1024
BATCH = 32 << 20


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


def _timed(start: float, cpu: float) -> dict[str, float]:
    """Wall and CPU seconds since ``start``/``cpu`` (CPU of the whole process, all threads)."""
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu, **_memory()}


def _open_env(path: Path) -> object:
    import lmdb

    # the same settings BlockStore uses
    return lmdb.open(str(path), map_size=1 << 30, max_dbs=4, sync=True, metasync=True, readahead=False)


def phase_baseline_import(source: Path, target: Path) -> dict[str, float]:
    env = _open_env(target)
    db = env.open_db(b"blocks")  # type: ignore[attr-defined]
    prefix = b"\x01\x55\x12\x20"
    start, cpu = time.perf_counter(), time.process_time()
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
    result = _timed(start, cpu)
    (target / "keys.bin").write_bytes(b"".join(keys))
    env.close()  # type: ignore[attr-defined]
    return result


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
    start, cpu = time.perf_counter(), time.process_time()
    with open(out, "wb") as sink:
        for key in keys:
            with env.begin(db=db) as txn:  # type: ignore[attr-defined]
                data = txn.get(key)
            if hashlib.sha256(data).digest() != key[4:]:
                raise SystemExit("baseline block corrupt")
            sink.write(data)
    return _timed(start, cpu)


def phase_mycel_import(source: Path, target: Path) -> dict[str, float | str]:
    from storage.blockstore import BlockStore
    from storage.files import add_path

    with BlockStore(target) as store:
        start, cpu = time.perf_counter(), time.process_time()
        node = add_path(store, source)
        result = _timed(start, cpu)
    return {**result, "cid": str(node.cid)}


def phase_mycel_export(target: Path, cid: str, out: Path) -> dict[str, float]:
    from storage.blockstore import BlockStore
    from storage.cid import CID
    from storage.files import get_path

    with BlockStore(target) as store:
        start, cpu = time.perf_counter(), time.process_time()
        get_path(store, CID.parse(cid), out)
        result = _timed(start, cpu)
    return result


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


Result = dict[str, float | str]


def _round(index: int, source: Path, work: Path, size: int) -> dict[str, Result]:
    """One round on fresh stores: both imports, then both exports, who goes first swapped by round."""
    directory = work / f"round{index}"
    directory.mkdir()
    try:
        results: dict[str, Result] = {}
        for side in rotated(["baseline", "mycel"], index):
            if side == "baseline":
                results["baseline-import"] = _child("baseline-import", str(source), str(directory / "baseline"))
            else:
                results["mycel-import"] = _child("mycel-import", str(source), str(directory / "mycel"))
        for side in rotated(["baseline", "mycel"], index):
            if side == "baseline":
                out = directory / "baseline.out"
                results["baseline-export"] = _child("baseline-export", str(directory / "baseline"), str(out))
            else:
                out = directory / "mycel.out"
                cid = str(results["mycel-import"]["cid"])
                results["mycel-export"] = _child("mycel-export", str(directory / "mycel"), cid, str(out))
            if out.stat().st_size != size:
                raise SystemExit(f"{side} export size mismatch")
            out.unlink()
        return results
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _column(rounds: list[dict[str, Result]], phase: str, field: str) -> list[float]:
    return [float(r[phase][field]) for r in rounds]


def report(rounds: list[dict[str, Result]], size: int) -> None:
    mib = size / (1 << 20)
    print(
        f"storage benchmark: {mib:.0f} MiB of random data, 256 KiB blocks, LMDB sync=on, 32 MiB transactions; "
        f"{len(rounds)} rounds alternating, median (min-max); {machine_note()}"
    )
    print(f"{'':8}{'':10}{'MB/s':>24}{'CPU s':>24}{'peak RSS MiB':>24}{'peak heap MiB':>24}")
    for name in ("import", "export"):
        rates: dict[str, list[float]] = {}
        for side in ("baseline", "mycel"):
            phase = f"{side}-{name}"
            rates[side] = [size / 1e6 / s for s in _column(rounds, phase, "seconds")]
            cells: list[Spread] = [
                spread(rates[side]),
                spread(_column(rounds, phase, "cpu_seconds")),
                spread(_column(rounds, phase, "peak_rss_mib")),
                spread(_column(rounds, phase, "peak_anon_mib")),
            ]
            label = "mycelnet" if side == "mycel" else side
            print(f"{name:8}{label:10}" + "".join(f"{c.show(2 if c is cells[1] else 1):>24}" for c in cells))
        rate = ratios(rates["mycel"], rates["baseline"])
        ours_cpu, base_cpu = (_column(rounds, f"{side}-{name}", "cpu_seconds") for side in ("mycel", "baseline"))
        cpu = ratios(ours_cpu, base_cpu)
        print(f"{name:8}{'ratio':10}{rate.show(2):>24}{cpu.show(2):>24}  (mycelnet / baseline, round by round)")
    print("peak RSS includes LMDB's memory-mapped pages (page cache); heap is the process's own memory")
    print(f"root CID {rounds[-1]['mycel-import']['cid']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a short run: 32 MiB, 2 rounds")
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory (default: a temp dir)")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.phase:
        global _SAMPLER
        _SAMPLER = _AnonSampler()
        print(json.dumps(PHASES[opts.phase](*[Path(a) if "/" in a else a for a in opts.args])))  # type: ignore[operator]
        return

    size_mib, rounds = (32, 2) if opts.quick else (opts.size_mib, opts.rounds)
    if size_mib < 1 or rounds < 1:
        parser.error("--size-mib and --rounds must be at least 1")
    work = Path(tempfile.mkdtemp(prefix="mycel-bench-", dir=opts.dir))
    try:
        source = work / "random.bin"
        size = size_mib << 20
        with open(source, "wb") as out:
            for offset in range(0, size, 8 << 20):
                out.write(os.urandom(min(8 << 20, size - offset)))
        report([_round(index, source, work, size) for index in range(rounds)], size)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
