"""``mycel node doctor``: check what a node needs, and say what to fix."""

from __future__ import annotations

import json
import os
import socket
import stat
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from node.config import NodeConfig
from node.identity import KEY_FILE, SEED_SIZE
from node.service import read_state


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok", "fail", "warn" or "skip"
    detail: str


def _tcp_target(address: str) -> tuple[str, int] | None:
    parts = address.strip("/").split("/")
    try:
        host = parts[parts.index("ip4") + 1] if "ip4" in parts else parts[parts.index("dns4") + 1]
        return host, int(parts[parts.index("tcp") + 1])
    except (ValueError, IndexError):
        return None


def _reachable(host: str, port: int, timeout: float = 2.0) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def run_checks(config: NodeConfig) -> list[Check]:
    checks: list[Check] = []
    data_dir = config.data_dir
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=data_dir):
            pass
        checks.append(Check("data dir", "ok", f"{data_dir} is writable"))
    except OSError as exc:
        checks.append(Check("data dir", "fail", f"{data_dir}: {exc.strerror}; fix permissions or set node.data_dir"))

    key = data_dir / KEY_FILE
    if not key.exists():
        checks.append(Check("node key", "warn", f"{key} does not exist yet; it is created on first start"))
    else:
        mode = stat.S_IMODE(key.stat().st_mode)
        size = key.stat().st_size
        if mode & 0o077:
            checks.append(Check("node key", "fail", f"{key} has mode {mode:o}; run `chmod 600 {key}`"))
        elif size != SEED_SIZE:
            checks.append(Check("node key", "fail", f"{key} holds {size} bytes, not a {SEED_SIZE}-byte seed"))
        else:
            checks.append(Check("node key", "ok", f"{key} mode 600, {SEED_SIZE} bytes"))

    state = read_state(data_dir)
    if state is None:
        checks.append(Check("api", "skip", f"no node running from {data_dir} (start one with `mycel node start`)"))
        checks.append(Check("listen", "skip", "node not running"))
    else:
        try:
            with urllib.request.urlopen(f"{state['api_url']}/v1/node", timeout=3) as response:
                info = json.loads(response.read())
            checks.append(Check("api", "ok", f"{state['api_url']} answers as {info['peer_id']}"))
            for address in info["addrs"]:
                target = _tcp_target(address)
                problem = _reachable(*target) if target else "not a TCP address"
                status = "ok" if problem is None else "fail"
                checks.append(Check("listen", status, f"{address}" + (f": {problem}" if problem else " accepts")))
        except (urllib.error.URLError, OSError, KeyError, ValueError) as exc:
            checks.append(Check("api", "fail", f"{state['api_url']} (pid {state['pid']}) does not answer: {exc}"))

    if not config.bootstrap:
        checks.append(Check("bootstrap", "skip", "no bootstrap peers configured (mDNS or manual connects only)"))
    for address in config.bootstrap:
        target = _tcp_target(address)
        problem = _reachable(*target) if target else "not a /ip4|dns4/.../tcp/... multiaddr"
        checks.append(
            Check("bootstrap", "ok" if problem is None else "fail", address + (f": {problem}" if problem else ""))
        )

    checks += _chain_checks(config)
    from agents.runtime.python import detect_layers

    for layer, layer_state in detect_layers().items():
        checks.append(Check(f"sandbox {layer}", "ok" if layer_state.startswith("on") else "warn", layer_state))
    if os.geteuid() == 0:
        checks.append(
            Check(
                "user",
                "warn",
                "running as root: agents drop every capability (and run as uid 65534 where allowed)",
            )
        )
    return checks


def _chain_checks(config: NodeConfig) -> list[Check]:
    """Settlement: the endpoint answers, the ledger is deployed, the node's key can pay gas, and
    it is registered (a running node registers itself)."""
    rpc = str(config.get("chain", "rpc_url"))
    if not rpc:
        return [Check("chain", "skip", "chain.rpc_url not set (settlement off)")]
    from web3 import Web3

    from contracts.keys import load_or_create_key
    from contracts.ledger import Ledger

    w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 3}))
    try:
        chain_id = int(w3.eth.chain_id)
    except Exception as exc:
        return [Check("chain", "fail", f"{rpc}: {exc}")]
    checks = [Check("chain", "ok", f"{rpc} is chain {chain_id}")]
    contract = str(config.get("chain", "contract"))
    if not contract or not Web3.is_address(contract) or not w3.eth.get_code(Web3.to_checksum_address(contract)):
        return [*checks, Check("ledger", "fail", f"no contract at chain.contract {contract!r} on this chain")]
    checks.append(Check("ledger", "ok", f"ledger contract at {contract}"))
    key_path = Path(os.path.expanduser(str(config.get("chain", "key_file")) or str(config.data_dir / "chain.key")))
    if not key_path.exists():
        return [*checks, Check("chain key", "warn", f"no key at {key_path} yet (the node creates it on first start)")]
    account = load_or_create_key(key_path)
    balance = int(w3.eth.get_balance(account.address))
    gas_note = "" if balance else ": it cannot pay gas for claims"
    checks.append(Check("chain key", "ok" if balance else "warn", f"{account.address} holds {balance} wei{gas_note}"))
    registered = Ledger(w3, contract).peer_id_of(account.address).decode(errors="replace")
    if not (config.data_dir / KEY_FILE).exists():
        return checks
    from node.identity import load_or_create

    peer_id = load_or_create(config.data_dir).peer_id
    if registered == peer_id:
        checks.append(Check("registration", "ok", f"{account.address} is bound to {peer_id}"))
    else:
        checks.append(Check("registration", "warn", "not registered yet (the node registers itself on start)"))
    return checks
