"""``mycel node doctor``: check what a node needs, and say in one line how to fix each failure.

When a node runs on the data dir, the checks use what that node reports it runs with
(``GET /v1/node/config``), not this shell's environment or files: the node may have been
started with other flags, variables or another node.toml. When none runs, the checks read
the node.toml (or the defaults) that ``mycel node start`` would use, offline.
"""

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
from typing import Any

from node.config import NodeConfig
from node.errors import NodeError
from node.identity import KEY_FILE, SEED_SIZE
from node.service import read_state

ANSWER_LIMIT = 1 << 20  # bytes of /v1/node/config read at most; a real answer is a few KiB


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok", "fail", "warn" or "skip"
    detail: str
    fix: str = ""  # one actionable line for a "fail" or "warn"


class NodeAnswerError(NodeError):
    """The API named by the data dir's state file did not give its effective config."""


def fetch_effective(api_url: str, token: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """``GET /v1/node/config`` from a running node (size-bounded, schema-checked at the top level)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"{api_url}/v1/node/config", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(ANSWER_LIMIT + 1)
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise NodeAnswerError(f"{api_url} needs the API token: pass --token or set MYCEL_API_TOKEN") from None
        raise NodeAnswerError(
            f"{api_url} answered /v1/node/config with HTTP {exc.code}; is it a mycelnet node?"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NodeAnswerError(f"no node answers at {api_url} ({reason})") from None
    if len(body) > ANSWER_LIMIT:
        raise NodeAnswerError(f"{api_url} sent more than {ANSWER_LIMIT} bytes for /v1/node/config")
    try:
        info = json.loads(body)
    except ValueError:
        raise NodeAnswerError(f"{api_url} sent something that is not JSON for /v1/node/config") from None
    wanted = {"peer_id": str, "data_dir": str, "addrs": list, "bootstrap": list, "settlement": dict, "api": dict}
    if not isinstance(info, dict) or any(not isinstance(info.get(k), t) for k, t in wanted.items()):
        raise NodeAnswerError(f"{api_url} answered /v1/node/config without the fields of a mycelnet node")
    return info


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


def _bindable(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on now (None: it can)."""
    if port == 0:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def running_node(data_dir: Path) -> str | None:
    """The API URL of the node running on ``data_dir``, from the state file it writes.

    A node killed with SIGKILL leaves that file behind; the data dir's lock, which the kernel
    drops with the process, says whether its writer still runs.
    """
    from node.daemon import probe_lock

    state = read_state(data_dir)
    if not state or not state.get("api_url") or not probe_lock(data_dir)[0]:
        return None
    return str(state["api_url"])


def run_checks(config: NodeConfig, node: dict[str, Any] | None = None, api_error: str = "") -> list[Check]:
    """``node``: what the running node reported (None: none runs, or see ``api_error``)."""
    data_dir = Path(node["data_dir"]) if node else config.data_dir
    checks = _data_dir_checks(data_dir)
    if node is not None:
        source = node.get("config_file") or "defaults (no node.toml)"
        checks.append(Check("node", "ok", f"{node['peer_id']} runs (pid {node.get('pid')}), config {source}"))
        checks.append(Check("api", "ok", f"{node['api'].get('url')} answers"))
        for address in node["addrs"]:
            target = _tcp_target(str(address))
            problem = _reachable(*target) if target else "not a TCP address"
            checks.append(
                Check(
                    "listen",
                    "ok" if problem is None else "fail",
                    f"{address}" + (f": {problem}" if problem else " accepts"),
                    "check node.listen and the firewall" if problem else "",
                )
            )
        running = [str(a) for a in node["bootstrap"]]
        checks += _bootstrap_checks(running)
        if config.source is not None:  # peers the file names that the running node does not use
            pending = [a for a in config.bootstrap if a not in running]
            for check in _bootstrap_checks(pending) if pending else []:
                checks.append(Check(check.name, check.status, f"{check.detail} (in {config.source}; not used "
                                    "until the node restarts)", check.fix))  # fmt: skip
        checks += _settlement_checks(node["settlement"])
    else:
        if api_error:
            checks.append(Check("node", "fail", api_error, "see the node's log; restart it with `mycel node start`"))
        else:
            source = config.source or "defaults (no node.toml; `mycel init` writes one)"
            checks.append(
                Check(
                    "node",
                    "warn",
                    f"no node is running on {data_dir}; checked {source} offline",
                    f"start it with `mycel node start --data-dir {data_dir}`",
                )
            )
        checks += _port_checks(config)
        checks += _bootstrap_checks(config.bootstrap)
        checks += _chain_checks(config)
    from agents.runtime.python import detect_layers

    for layer, layer_state in detect_layers().items():
        checks.append(Check(f"sandbox {layer}", "ok" if layer_state.startswith("on") else "warn", layer_state))
    if os.geteuid() == 0:
        checks.append(
            Check("user", "warn", "running as root: agents drop every capability (and run as uid 65534 where allowed)")
        )
    return checks


def _data_dir_checks(data_dir: Path) -> list[Check]:
    checks: list[Check] = []
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=data_dir):
            pass
        checks.append(Check("data dir", "ok", f"{data_dir} is writable"))
    except OSError as exc:
        checks.append(
            Check(
                "data dir",
                "fail",
                f"{data_dir}: {exc.strerror}",
                "fix its permissions, or set [node] data_dir in node.toml",
            )
        )
    key = data_dir / KEY_FILE
    if not key.exists():
        checks.append(
            Check("node key", "warn", f"{key} does not exist yet", "it is created by `mycel init` or on first start")
        )
        return checks
    mode = stat.S_IMODE(key.stat().st_mode)
    size = key.stat().st_size
    if mode & 0o077:
        checks.append(Check("node key", "fail", f"{key} has mode {mode:o}", f"run `chmod 600 {key}`"))
    elif size != SEED_SIZE:
        checks.append(
            Check(
                "node key",
                "fail",
                f"{key} holds {size} bytes, not a {SEED_SIZE}-byte seed",
                "restore it from a backup, or move it away to make a new identity",
            )
        )
    else:
        checks.append(Check("node key", "ok", f"{key} mode 600, {SEED_SIZE} bytes"))
    return checks


def _port_checks(config: NodeConfig) -> list[Check]:
    """A stopped node's API and libp2p ports must be free, or its start fails."""
    host, port = config.api_host_port
    problem = _bindable(host, port)
    checks = [
        Check(
            "api",
            "ok" if problem is None else "fail",
            f"{host}:{port}" + (f": {problem}" if problem else " is free"),
            f"pick another port: --api {host}:{port + 1}, or [api] listen in node.toml" if problem else "",
        )
    ]
    for address in config.listen:
        target = _tcp_target(address)
        problem = _bindable(*target) if target else None
        checks.append(
            Check(
                "listen",
                "ok" if problem is None else "fail",
                address + (f": {problem}" if problem else " is free"),
                "pick another port with --listen, or [node] listen in node.toml" if problem else "",
            )
        )
    return checks


def _bootstrap_checks(bootstrap: list[str]) -> list[Check]:
    if not bootstrap:
        return [Check("bootstrap", "skip", "no bootstrap peers configured (mDNS or manual connects only)")]
    checks = []
    for address in bootstrap:
        target = _tcp_target(address)
        problem = _reachable(*target) if target else "not a /ip4|dns4/.../tcp/... multiaddr"
        fix = "check that peer runs, or fix [node] bootstrap in node.toml" if problem else ""
        checks.append(
            Check("bootstrap", "ok" if problem is None else "fail", address + (f": {problem}" if problem else ""), fix)
        )
    return checks


def _fund_fix(address: str, rpc_url: str) -> str:
    return f"fund it: `mycel chain fund {address} --rpc-url {rpc_url}` on a dev chain, else send it ETH for gas"


def _settlement_checks(settlement: dict[str, Any]) -> list[Check]:
    """What the running node says about its chain: on/off, reachable, funded, registered."""
    from node.cli.common import format_amount

    if not settlement.get("on"):
        return [
            Check("settlement", "skip", "off: the node settles on no chain (set [chain] rpc_url and contract to earn)")
        ]
    rpc, address = str(settlement.get("rpc_url")), str(settlement.get("address"))
    checks = [
        Check(
            "settlement", "ok", f"on: chain {settlement.get('chain_id')} at {rpc}, ledger {settlement.get('contract')}"
        )
    ]
    balance = settlement.get("balance")
    if not isinstance(balance, int) or isinstance(balance, bool):
        error = settlement.get("chain_error") or "no balance reported"
        fix = "is the chain running (`mycel chain dev`)? check [chain] rpc_url in node.toml"
        return [*checks, Check("chain", "fail", f"the node cannot reach {rpc}: {error}", fix)]
    if settlement.get("ledger_deployed"):
        checks.append(Check("ledger", "ok", f"ledger contract at {settlement.get('contract')}"))
    else:
        fix = "set [chain] contract to the ledger's address (`mycel chain dev` prints it) and restart the node"
        checks.append(Check("ledger", "fail", f"no contract at {settlement.get('contract')} on this chain", fix))
    if balance == 0:
        checks.append(
            Check(
                "chain key",
                "fail",
                f"{address} holds 0 ETH: the node cannot pay gas to register or claim",
                _fund_fix(address, rpc),
            )
        )
    else:
        checks.append(Check("chain key", "ok", f"{address} holds {format_amount(balance)}"))
    if settlement.get("registered"):
        checks.append(Check("registration", "ok", f"{address} is bound to this node's peer ID on the ledger"))
    else:
        fix = _fund_fix(address, rpc) if balance == 0 else "wait a few seconds: the node retries until it is registered"
        checks.append(Check("registration", "warn", "not registered on the ledger yet", fix))
    return checks


def _chain_checks(config: NodeConfig) -> list[Check]:
    """Offline: the endpoint answers, the ledger is deployed, the node's key can pay gas."""
    from node.cli.common import format_amount

    rpc = str(config.get("chain", "rpc_url"))
    if not rpc:
        return [Check("settlement", "skip", "off: chain.rpc_url not set (set [chain] rpc_url and contract to earn)")]
    from web3 import Web3

    from contracts.keys import load_or_create_key
    from contracts.ledger import Ledger

    w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 3}))
    try:
        chain_id = int(w3.eth.chain_id)
    except Exception as exc:
        return [
            Check("chain", "fail", f"{rpc}: {exc}", "is the chain running (`mycel chain dev`)? check [chain] rpc_url")
        ]
    checks = [Check("chain", "ok", f"{rpc} is chain {chain_id}")]
    contract = str(config.get("chain", "contract"))
    if not contract or not Web3.is_address(contract) or not w3.eth.get_code(Web3.to_checksum_address(contract)):
        fix = "set [chain] contract to the ledger's address (`mycel chain dev` prints it)"
        return [*checks, Check("ledger", "fail", f"no contract at chain.contract {contract!r} on this chain", fix)]
    checks.append(Check("ledger", "ok", f"ledger contract at {contract}"))
    key_path = Path(os.path.expanduser(str(config.get("chain", "key_file")) or str(config.data_dir / "chain.key")))
    if not key_path.exists():
        return [
            *checks,
            Check("chain key", "warn", f"no key at {key_path} yet", "`mycel init` or the first start creates it"),
        ]
    account = load_or_create_key(key_path)
    balance = int(w3.eth.get_balance(account.address))
    if balance:
        checks.append(Check("chain key", "ok", f"{account.address} holds {format_amount(balance)}"))
    else:
        checks.append(
            Check(
                "chain key",
                "fail",
                f"{account.address} holds 0 ETH: it cannot pay gas for claims",
                _fund_fix(account.address, rpc),
            )
        )
    registered = Ledger(w3, contract).peer_id_of(account.address).decode(errors="replace")
    if not (config.data_dir / KEY_FILE).exists():
        return checks
    from node.identity import load_or_create

    peer_id = load_or_create(config.data_dir).peer_id
    if registered == peer_id:
        checks.append(Check("registration", "ok", f"{account.address} is bound to {peer_id}"))
    else:
        checks.append(Check("registration", "warn", "not registered yet", "the node registers itself when it starts"))
    return checks
