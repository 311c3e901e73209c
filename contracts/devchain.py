"""A local development chain: anvil from the npm package ``@foundry-rs/anvil``, installed into
this repository's node_modules by ``make setup`` (never a global install, never a download at
run time). Used by ``mycel chain dev``, ``mycel cluster up`` and the integration tests.

anvil's accounts are unlocked, so the deployer needs no key; any other account (a node's
key, a client's key) is funded with ``anvil_setBalance`` instead of a transfer, which keeps
the chain free of bookkeeping transactions.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from web3 import Web3

from contracts.build import load_artifact
from contracts.errors import ChainError
from contracts.ledger import Ledger

REPO_ROOT = Path(__file__).resolve().parent.parent
ANVIL_CANDIDATES = (
    REPO_ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil",
    REPO_ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-arm64" / "bin" / "anvil",
    REPO_ROOT / "node_modules" / "@foundry-rs" / "anvil-darwin-arm64" / "bin" / "anvil",
    REPO_ROOT / "node_modules" / ".bin" / "anvil",  # the npm shim (needs node on PATH)
)
DEV_CHAIN_ID = 31337
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}  # started here, reaped by stop_chain


def anvil_binary() -> Path:
    override = os.environ.get("MYCEL_ANVIL")
    if override:
        return Path(override)
    for candidate in ANVIL_CANDIDATES:
        if candidate.exists():
            return candidate
    raise ChainError("anvil is not installed: run `make setup` (it runs `npm install` for @foundry-rs/anvil)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class DevChain:
    """A running anvil process and the ledger contract deployed on it."""

    pid: int
    rpc_url: str
    contract: str
    log_path: str

    def web3(self) -> Web3:
        return Web3(Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": 10}))

    def fund(self, address: str, wei: int = 10**21) -> None:
        fund(self.rpc_url, address, wei)

    def stop(self) -> None:
        stop_chain(self.pid)


def fund(rpc_url: str, address: str, wei: int = 10**21) -> None:
    """Set ``address``'s balance on an anvil chain (a dev-chain faucet; no transaction)."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
    w3.provider.make_request("anvil_setBalance", [Web3.to_checksum_address(address), hex(wei)])  # type: ignore[arg-type]


def start_dev_chain(directory: Path, port: int = 0, block_time: float | None = None, timeout: float = 20.0) -> DevChain:
    """Start anvil on 127.0.0.1, wait until it answers, deploy the ledger; stop it on failure.

    Instant mining by default (short runs, tests); ``block_time`` for long-lived chains, since
    anvil slows as the number of blocks grows.
    """
    directory.mkdir(parents=True, exist_ok=True)
    binary = anvil_binary()
    port = port or _free_port()
    args = [str(binary), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(DEV_CHAIN_ID)]
    args += ["--state", str(directory / "anvil-state.json")]
    if block_time:
        args += ["--block-time", str(block_time)]
    log_path = directory / "anvil.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    _CHILDREN[proc.pid] = proc
    rpc_url = f"http://127.0.0.1:{port}"
    try:
        w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 5}))
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise ChainError(f"anvil exited with {proc.returncode}; see {log_path}")
            with contextlib.suppress(Exception):
                if w3.eth.chain_id == DEV_CHAIN_ID:
                    break
            if time.monotonic() > deadline:
                raise ChainError(f"anvil did not answer on {rpc_url} within {timeout:.0f} s; see {log_path}")
            time.sleep(0.05)
        contract_file = directory / "contract-address"  # "<address> <build>": a kept chain's ledger
        build = hashlib.sha256(str(load_artifact()["bytecode"]).encode()).hexdigest()[:16]
        saved = contract_file.read_text().split() if contract_file.exists() else []
        contract = saved[0] if len(saved) == 2 and saved[1] == build else ""  # another build: deploy this one
        if not contract or not w3.eth.get_code(Web3.to_checksum_address(contract)):
            contract = Ledger.deploy(w3, w3.eth.accounts[0]).address
            contract_file.write_text(f"{contract} {build}")
    except BaseException:
        stop_chain(proc.pid)
        raise
    return DevChain(proc.pid, rpc_url, contract, str(log_path))


def stop_chain(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM (anvil writes its --state file on the way out), then SIGKILL."""
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        child.terminate()
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
            if finished:
                return
        except ChildProcessError:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
