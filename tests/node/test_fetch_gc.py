"""A fetch and the pin after it keep `mycel gc` in another process from taking their blocks."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import nacl.signing

from node.exchange import BlockExchange
from node.identity import NodeIdentity
from node.metrics import Metrics
from node.p2p.network import P2PNetwork
from storage.blockstore import BlockStore
from storage.files import add_path, cat
from tests.support import REPO_ROOT

# `mycel gc` through the real CLI entry point, as fast as it will go, until told to stop
_GC_LOOP = """
import sys
from pathlib import Path
from node.cli.main import main
stop = Path(sys.argv[1])
runs = 0
while not stop.exists():
    assert main(["gc"]) == 0
    runs += 1
    if runs == 1:
        print("looping", file=sys.stderr, flush=True)
print(runs, file=sys.stderr, flush=True)
"""


async def test_gc_in_a_loop_cannot_break_a_fetched_and_pinned_dag(tmp_path: Path) -> None:
    source = tmp_path / "big"
    source.write_bytes(random.Random(11).randbytes(100 << 20))  # 100 MiB: 400 leaf blocks
    provider_store = BlockStore(tmp_path / "provider", sync=False)
    root = add_path(provider_store, source).cid
    data_dir = tmp_path / "fetcher"
    fetcher_store = BlockStore(data_dir / "blocks", sync=False)
    networks = [P2PNetwork(NodeIdentity(nacl.signing.SigningKey.generate()), ["/ip4/127.0.0.1/tcp/0"]) for _ in "ab"]
    provider = BlockExchange(provider_store, networks[0], Metrics())
    fetcher = BlockExchange(fetcher_store, networks[1], Metrics())
    stop = tmp_path / "stop-gc"
    gc_loop = subprocess.Popen(
        [sys.executable, "-c", _GC_LOOP, str(stop)],
        cwd=REPO_ROOT,
        env=dict(os.environ, MYCEL_DATA_DIR=str(data_dir)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert gc_loop.stderr is not None
        assert gc_loop.stderr.readline().strip() == "looping"  # gc is running against this store
        for network in networks:
            await network.start()
        await networks[1].connect((await networks[0].addrs())[0])
        stats = await fetcher.fetch_and_pin(root, [networks[0].peer_id], "big")
        assert stats.blocks_fetched == len(provider_store._reachable(root, [])) > 400
        stop.touch()
        _, err = gc_loop.communicate(timeout=60)
        assert gc_loop.returncode == 0, err
        assert int(err.split()[-1]) >= 2  # it ran before and after the fetch (in between it waited)
        assert fetcher_store.is_pinned(root)
        assert fetcher_store.missing_blocks(root) == []
        assert b"".join(cat(fetcher_store, root)) == source.read_bytes()
    finally:
        stop.touch()
        if gc_loop.poll() is None:
            gc_loop.kill()
            gc_loop.wait()
        for network in networks:
            await network.stop()
        provider.close()
        fetcher.close()
        provider_store.close()
        fetcher_store.close()
