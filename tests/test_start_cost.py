"""What a node process and a `mycel` command pay before doing anything: imports and compiling.

Each cluster test starts 2-4 node processes and many tests run `mycel` commands, so a second
of start-up per process is minutes of suite time on two cores.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

from tests.conftest import PROJECT_PACKAGES
from tests.support import REPO_ROOT


def test_a_node_without_a_chain_does_not_import_the_ethereum_stack() -> None:
    """eth-utils (pydantic, a table of every network) cost ~0.4-0.7 s of each node's start."""
    probe = "import sys, node.cli.main, node.daemon, node.service; print(__import__('json').dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    loaded = json.loads(out.stdout)
    heavy = [name for name in loaded if name.split(".")[0] in ("eth_utils", "pydantic", "web3", "eth_account")]
    assert heavy == []


# What py-libp2p imports for features a node does not run (node/p2p/lean_imports.py defers them):
# QUIC, AutoTLS/ACME's HTTP clients, mDNS, UPnP, the WebSocket transport, dnspython's resolver.
UNUSED_AT_START = ("aioquic", "zeroconf", "httpx", "requests", "trio_websocket", "websockets", "miniupnpc", "rich")
UNUSED_IDLE = ("wasmtime",)  # built at the first wasm job (agents/runtime/lazy_wasm.py)
# RSS of a fresh interpreter once it has imported a node's modules: 110 MiB before the deferrals, 81 after
# (bare Python is ~10); the figure hardly varies from run to run, imports being deterministic.
START_IMPORTS_RSS_MIB = 95


def test_a_node_does_not_import_what_py_libp2p_pulls_in_for_features_it_does_not_run() -> None:
    """aioquic, ACME's httpx/requests and zeroconf were ~20 MiB of each idle node and ~0.3 s of its start."""
    probe = (
        "import sys, json, node.cli.main, node.daemon, node.service\n"
        "rss = [l for l in open('/proc/self/status') if l.startswith('VmRSS:')][0].split()[1]\n"
        "print(json.dumps([sorted(sys.modules), int(rss) / 1024]))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    modules, rss_mib = json.loads(out.stdout)
    loaded = {name.split(".")[0] for name in modules}
    assert [name for name in UNUSED_AT_START + UNUSED_IDLE if name in loaded] == []
    assert [name for name in ("dns.resolver", "dns.asyncresolver") if name in modules] == []
    assert rss_mib < START_IMPORTS_RSS_MIB


def test_checksumming_still_behaves_as_eth_utils() -> None:
    from contracts.checksum import to_checksum_address

    assert to_checksum_address("0x52908400098527886e0f7030069857d2e4169ee7") == (
        "0x52908400098527886E0F7030069857D2E4169EE7"
    )
    for bad in ("0x12", "zz" * 20):
        try:
            to_checksum_address(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was accepted")


def test_the_project_is_byte_compiled_for_the_processes_the_suite_starts() -> None:
    """With PYTHONDONTWRITEBYTECODE set no process writes bytecode, so the session compiles it
    once; every module a node or a command imports then has current bytecode to read."""
    if not sys.flags.dont_write_bytecode:
        return  # each process writes its own bytecode as it imports: nothing to check here
    stale = []
    for package in PROJECT_PACKAGES:
        for source in (REPO_ROOT / package).rglob("*.py"):
            cached = importlib.util.cache_from_source(str(source))
            if not os.path.exists(cached) or os.stat(cached).st_mtime < source.stat().st_mtime:
                stale.append(str(source.relative_to(REPO_ROOT)))
    assert stale == []
