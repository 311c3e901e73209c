"""A settling node on a real anvil, as a new operator meets it: ``mycel init`` with a chain, the
doctor asking the running node (not this shell) and naming the fix for an unfunded account,
and ``mycel chain fund`` doing that fix with no ledger contract given."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts.devchain import DevChain, start_dev_chain
from node.cluster import free_port, http_json
from tests.node.test_cli_node import CliRunner, StartedNode, mycel, started

__all__ = ["mycel", "started"]  # fixtures, used by name


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[DevChain]:
    dev = start_dev_chain(tmp_path / "anvil")
    yield dev
    dev.stop()


def test_doctor_asks_the_settling_node_and_its_fix_line_funds_the_account(
    mycel: CliRunner, tmp_path: Path, chain: DevChain, started: list[StartedNode]
) -> None:
    data_dir, api = tmp_path / "op", free_port()
    init = mycel("init", "--data-dir", data_dir, "--listen", f"/ip4/127.0.0.1/tcp/{free_port()}",
                 "--api", f"127.0.0.1:{api}", "--no-mdns", "--rpc-url", chain.rpc_url, "--contract", chain.contract,
                 "--price", "1gwei")  # fmt: skip
    assert init.returncode == 0, init.stderr
    address = init.stdout.split("chain account", 1)[1].split()[0]
    assert f"mycel chain fund {address} --rpc-url {chain.rpc_url}" in init.stdout
    started.append(StartedNode(data_dir))

    # this shell names no chain (the fixture cleared MYCEL_*): what doctor reports comes from the node
    doctor = mycel("node", "doctor", "--data-dir", data_dir)
    lines = doctor.stdout.splitlines()
    assert doctor.returncode == 1 and doctor.stderr == "error: 1 check(s) failed: chain key\n", doctor.stdout
    assert any(line.startswith("ok    settlement") and f"on: chain 31337 at {chain.rpc_url}" in line for line in lines)
    assert any(line.startswith("ok    ledger") and chain.contract in line for line in lines)
    failed = next(i for i, line in enumerate(lines) if line.startswith("fail  chain key"))
    assert f"{address} holds 0 ETH" in lines[failed]
    fix = lines[failed + 1].strip()
    assert fix.startswith("fix: fund it: `mycel chain fund ") and chain.contract not in fix, fix

    command = shlex.split(fix.split("`")[1])  # run the fix exactly as printed
    assert command[:3] == ["mycel", "chain", "fund"]
    funded = mycel(*command[1:])
    assert funded.returncode == 0, funded.stderr
    assert funded.stdout == f"{address} now holds 1000 ETH\n"
    raw = mycel("chain", "fund", address, "--rpc-url", chain.rpc_url, "--amount", "21000gwei", "--json")
    assert json.loads(raw.stdout) == {"address": address, "balance": 21 * 10**12}
    assert chain.web3().eth.get_balance(address) == 21 * 10**12

    healthy = mycel("node", "doctor", "--data-dir", data_dir)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert any(
        line.startswith("ok    chain key") and line.endswith(f"{address} holds 0.000021 ETH")
        for line in healthy.stdout.splitlines()
    ), healthy.stdout
    effective = http_json(f"http://127.0.0.1:{api}/v1/node/config")
    assert effective["settlement"]["on"] and effective["settlement"]["balance"] == 21 * 10**12
    assert effective["price_per_cpu_second"] == 10**9
    status = mycel("node", "status", "--data-dir", data_dir)
    assert f"settlement: on: {address} holds 0.000021 ETH" in status.stdout
    assert "price: 1 gwei per CPU-second" in status.stdout
    assert mycel("node", "stop", "--data-dir", data_dir).returncode == 0


def test_chain_fund_needs_only_the_rpc_url(mycel: CliRunner, tmp_path: Path, chain: DevChain) -> None:
    key = tmp_path / "client.key"
    funded = mycel("chain", "fund", "--rpc-url", chain.rpc_url, "--key", key, "--amount", "0.5eth")
    assert funded.returncode == 0, funded.stderr
    address = funded.stdout.split()[0]
    assert funded.stdout == f"{address} now holds 0.5 ETH\n" and chain.web3().eth.get_balance(address) == 5 * 10**17
    nowhere = mycel("chain", "fund", "--key", key)
    assert nowhere.returncode == 2 and "--rpc-url" in nowhere.stderr
    bad = mycel("chain", "fund", "0x1234", "--rpc-url", chain.rpc_url)
    assert bad.returncode == 2 and "not a 0x address" in bad.stderr
