"""The SDK-only install (``pip install mycelnet``, no extras): proved on the import graph.

Each check runs in a fresh interpreter in which the node's and the chain's packages cannot be
imported (tests/sdk/sdk_only.py), so a module-level import of any of them anywhere on the
SDK's path, or the CLI's client commands' path, fails here. The package metadata is checked
too: the base dependency list must not name them.
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from storage.cid import CID
from tests.sdk.fakenode import PEER_ID, FakeNode, fake_node

ROOT = Path(__file__).resolve().parents[2]
SDK_ONLY = [sys.executable, str(ROOT / "tests" / "sdk" / "sdk_only.py")]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
HEAVY = {"libp2p", "lmdb", "web3", "wasmtime", "onnxruntime", "onnx", "vyper", "numpy", "scikit-learn", "tokenizers",
         "coincurve", "eth-account", "eth-tester"}  # fmt: skip

SCRIPT = """
import sys
from pathlib import Path

import sdk
from sdk import SyncClient, VerificationError, bytes_match, verify_bytes, verify_path, verify_receipt

url, file_cid, dir_cid, directory, receipt_path, job_id, peer = sys.argv[1:8]
assert verify_bytes(file_cid, b"hello sdk\\n") == verify_bytes(file_cid, b"hello sdk\\n")
assert not bytes_match(file_cid, b"tampered\\n")
assert str(verify_path(dir_cid, directory)) == dir_cid
receipt = verify_receipt(Path(receipt_path).read_bytes(), job_id, node=peer)
try:
    verify_receipt(Path(receipt_path).read_bytes()[:-1] + b"x")
except VerificationError:
    pass
else:
    raise AssertionError("a tampered receipt verified")
with SyncClient(url) as client:
    assert client.cat(file_cid) == b"hello sdk\\n"
    job = client.job(job_id)
    assert job.status == "done" and job.receipt().node == peer
try:
    sdk.Wallet.open("http://127.0.0.1:1", "0x" + "00" * 20)
except sdk.MissingExtraError as exc:
    print("wallet:", exc)
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"lmdb", "libp2p", "trio", "wasmtime", "web3", "eth_account"})
print("receipt of", receipt.job_id, "heavy", heavy)
"""


def _sdk_only(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SDK_ONLY, *args], env=ENV, cwd=cwd, capture_output=True, text=True, timeout=60)


def _agent(directory: Path) -> Path:
    directory.mkdir()
    (directory / "mycel-agent.toml").write_text(
        'name = "hello"\nversion = "0.1.0"\nruntime = "python"\nentrypoint = "main.py"\n'
    )
    (directory / "main.py").write_text("print('hello')\n")
    return directory


def test_offline_verification_and_the_client_need_no_node_or_chain_package(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    (directory / "sub").mkdir(parents=True)
    (directory / "sub" / "a.txt").write_text("alpha\n")
    script = tmp_path / "check.py"
    script.write_text(SCRIPT)
    with fake_node() as node:
        file_cid = node.add_file(b"hello sdk\n")
        node.add_job("b" * 32, ["queued", "running", "done"], file_cid)
        (tmp_path / "receipt").write_bytes(node.receipts["b" * 32])
        dir_cid = node.add_directory(directory)
        run = _sdk_only(str(script), node.url, str(file_cid), str(dir_cid), str(directory), str(tmp_path / "receipt"),
                        "b" * 32, PEER_ID)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "receipt of " + "b" * 32 + " heavy []" in run.stdout
    assert "wallet: a wallet (paid jobs, deposits, settlement checks) needs mycelnet[pay]" in run.stdout


def test_client_commands_run_and_node_commands_name_the_extra(tmp_path: Path) -> None:
    agent = _agent(tmp_path / "agent")
    with fake_node() as node:
        node.add_job("c" * 32, ["queued", "running", "done"], node.add_file(b"out\n"))
        status = _sdk_only("-m", "node.cli.main", "job", "status", "c" * 32, "--api", node.url)
        deploy = _sdk_only("-m", "node.cli.main", "agent", "deploy", str(agent), "--api", node.url)
        run = _sdk_only("-m", "node.cli.main", "job", "run", str(CID.for_block(b"x")), "--api", node.url)
        _check_verify_cmd(node, tmp_path)
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith(f"job {'c' * 32}: done")
    assert deploy.returncode == 0, deploy.stderr
    assert deploy.stdout.strip().startswith("bafyrei")
    assert run.returncode == 0, run.stderr
    assert " done: result " in run.stdout
    start = _sdk_only("-m", "node.cli.main", "node", "start", "--data-dir", str(tmp_path / "node"))
    assert start.returncode == 1
    assert start.stdout == ""
    assert start.stderr.count("\n") == 1  # one line, no traceback
    assert start.stderr.startswith("error: mycel node start needs mycelnet[node] (")
    assert start.stderr.rstrip().endswith("pip install 'mycelnet[node]'")


def _check_verify_cmd(node: FakeNode, tmp_path: Path) -> None:
    """``mycel verify`` (offline hashing) runs too."""
    (tmp_path / "f.txt").write_bytes(b"verify me\n")
    cid = node.add_file(b"verify me\n")
    verify = _sdk_only("-m", "node.cli.main", "verify", str(cid), str(tmp_path / "f.txt"))
    assert verify.returncode == 0, verify.stderr


def test_the_base_install_depends_on_none_of_the_node_or_chain_packages() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {Requirement(spec).name.lower() for spec in project["dependencies"]}
    assert base, "no base dependencies read"
    assert base & HEAVY == set()
    assert {"aiohttp", "multiformats", "cbor2", "pynacl", "click"} <= base
    extras = project["optional-dependencies"]
    node = {Requirement(spec).name.lower() for spec in extras["node"]}
    assert {"libp2p", "lmdb", "web3", "wasmtime", "onnxruntime", "vyper"} <= node
    assert "web3" in {Requirement(spec).name.lower() for spec in extras["pay"]}


def test_every_data_file_of_a_package_goes_into_the_wheel() -> None:
    """A non-editable install holds only what package-data names: the node's default config and
    the ledger's ABI must be among it, or `pip install` works only from a checkout."""
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    data_files = [
        path
        for package in ("storage", "agents", "contracts", "node", "sdk")
        for path in (ROOT / package).rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    ]
    assert any(path.name == "MycelLedger.json" for path in data_files)  # the walk finds data files

    def shipped(path: Path) -> bool:
        for package, patterns in package_data.items():
            base = ROOT.joinpath(*package.split("."))
            if base in path.parents and any(fnmatch.fnmatch(str(path.relative_to(base)), p) for p in patterns):
                return True
        return False

    assert [str(path.relative_to(ROOT)) for path in data_files if not shipped(path)] == []
