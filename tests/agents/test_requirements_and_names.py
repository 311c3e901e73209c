"""Manifest ``requires``, agent names and versions in the store, and the inputs manifest."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import nacl.signing
import pytest

from agents.bundle import agent_id_of, pack, resolve, version_key
from agents.environment import agent_environment, describe
from agents.errors import AgentNotFound, BadAgentRef, ManifestError, MissingPackages
from agents.executor import Executor
from agents.manifest import parse
from agents.requirements import parse_requirement, unmet
from agents.runtime.base import RunRequest
from agents.runtime.python import PythonRuntime
from node.scheduler.candidates import Candidate, PlacementContext
from node.scheduler.rules import requires as requires_rule
from storage.blockstore import BlockStore
from storage.files import add_stream, get_path
from tests.support import REPO_ROOT

WORDCOUNT_ID = "bafyreicjsvfhy4ms4imwc64eui652qpnfallbvb6avdjd5rhvbjv4mulam"
BASE = {"name": "probe", "version": "0.1.0", "runtime": "python", "entrypoint": "main.py"}


def _agent(root: Path, version: str, requires: list[str] | None = None, source: str = "pass\n") -> Path:
    bundle = root / f"probe-{version}-{uuid.uuid4().hex[:6]}"
    bundle.mkdir()
    (bundle / "main.py").write_text(source)
    extra = f"requires = {json.dumps(requires)}\n" if requires is not None else ""
    (bundle / "mycel-agent.toml").write_text(
        f'name = "probe"\nversion = "{version}"\nruntime = "python"\nentrypoint = "main.py"\n{extra}'
    )
    return bundle


def test_requirements_parse_and_compare() -> None:
    assert parse_requirement("numpy>=2", "m").allows("2.4.6")
    assert not parse_requirement("numpy>=2", "m").allows("1.26.4")
    assert parse_requirement("Scikit_Learn >=1.5, <2", "m").name == "scikit-learn"
    assert unmet(("numpy>=2", "numpy<2", "nope"), {"numpy": "2.0"}) == ["numpy<2 (has 2.0)", "nope (not installed)"]
    for bad in ["", "numpy>>2", "numpy>=two", "numpy[extra]", "x" * 101, "numpy; python_version>'3'"]:
        with pytest.raises(ManifestError, match="requires"):
            parse({**BASE, "requires": [bad]}, "m")
    with pytest.raises(ManifestError, match="at most 32"):
        parse({**BASE, "requires": ["numpy"] * 33}, "m")
    with pytest.raises(ManifestError, match="wasm agent"):
        parse({**BASE, "runtime": "wasm", "requires": ["numpy"]}, "m")


def test_a_manifest_without_requires_keeps_its_agent_id() -> None:
    """The field is left out of the record when empty: agents packed before it keep their ids."""
    assert "requires" not in parse(dict(BASE), "m").to_record()
    # the id this example packed to before manifests had ``requires``
    assert str(agent_id_of(REPO_ROOT / "examples" / "wasm-wordcount")) == WORDCOUNT_ID
    assert parse({**BASE, "requires": ["numpy>=2"]}, "m").to_record()["requires"] == ["numpy>=2"]


def test_names_resolve_to_the_newest_or_the_asked_version(tmp_path: Path, store: BlockStore) -> None:
    ids = {v: pack(_agent(tmp_path, v), store).agent_id for v in ("0.9.0", "0.10.0", "0.10.0-rc1")}
    assert resolve(store, "probe").agent_id == ids["0.10.0"]  # numeric order, a pre-release before its release
    assert resolve(store, "probe@0.9.0").agent_id == ids["0.9.0"]
    assert resolve(store, str(ids["0.9.0"])).agent_id == ids["0.9.0"]
    held = r"no agent named probe@2.0.0 on this node; it holds probe 0.9.0, 0.10.0-rc1, 0.10.0 \("
    with pytest.raises(AgentNotFound, match=held):
        resolve(store, "probe@2.0.0")
    with pytest.raises(AgentNotFound, match=r"no agent named other on this node \(deploy it with 'mycel agent deploy"):
        resolve(store, "other")
    with pytest.raises(BadAgentRef, match="neither an agent id"):
        resolve(store, "Not A Name!")
    assert version_key("1.0.0") > version_key("1.0.0-rc1") > version_key("0.99.0")


def test_an_unmet_requirement_fails_before_the_agent_runs(tmp_path: Path, store: BlockStore) -> None:
    marker = tmp_path / "ran"
    bundle = pack(_agent(tmp_path, "0.1.0", ["numpy>=99", "numpy>=2"], f"open({str(marker)!r}, 'w')\n"), store)
    executor = Executor(store, {"python": PythonRuntime(layers={})}, nacl.signing.SigningKey.generate())  # type: ignore[dict-item]
    with pytest.raises(MissingPackages, match=r"requires numpy>=99 \(has 2\.[0-9.]+\); this node's python environment"):
        executor.run(RunRequest(uuid.uuid4().hex, bundle))
    assert not marker.exists()


def test_placement_refuses_a_node_whose_environment_lacks_the_package() -> None:
    env = describe("cpython-3.11.7", {"numpy": "2.1.0"}, "wasmtime-50.0.1")
    context = PlacementContext("python", False, (), 0, requires=("numpy>=3",), environments={env.hash: env.packages})
    known, unknown = Candidate("a", "", ("python",), 1, env=env.hash), Candidate("b", "", ("python",), 1, env="f" * 64)
    assert requires_rule.check(known, context) == "its python environment lacks numpy>=3 (has 2.1.0)"
    assert requires_rule.check(unknown, context) is None  # its own executor checks before running
    assert requires_rule.check(known, PlacementContext("python", False, (), 0)) is None


def test_the_environment_lists_the_interpreter_packages_and_wasm_runtime() -> None:
    env = agent_environment()
    record = env.to_json()
    assert record["python"]["interpreter"] == PythonRuntime(layers={}).version
    assert "numpy" in record["python"]["packages"] and record["wasm"]["runtime"].startswith("wasmtime-")
    assert len(env.hash) == 64 and describe(env.python, dict(env.packages), env.wasm).hash == env.hash
    assert describe(env.python, {**env.packages, "numpy": "0.0.1"}, env.wasm).hash != env.hash


def test_the_agent_finds_its_inputs_in_the_inputs_manifest(tmp_path: Path, store: BlockStore) -> None:
    """A file input is the file $MYCEL_IN/NAME; MYCEL_INPUTS lists path, cid, kind and size, and
    $MYCEL_IN holds nothing else (agents that walk it see only what the job sent)."""
    source = (
        "import json, os, pathlib\n"
        "root = pathlib.Path(os.environ['MYCEL_IN'])\n"
        "listed = {'inputs': json.loads(os.environ['MYCEL_INPUTS']), 'entries': sorted(os.listdir(root))}\n"
        "listed['read'] = (root / listed['inputs']['notes']['path']).read_text()\n"
        "(pathlib.Path(os.environ['MYCEL_OUT']) / 'seen.json').write_text(json.dumps(listed))\n"
    )
    bundle = pack(_agent(tmp_path, "0.1.0", None, source), store)
    notes = add_stream(store, io.BytesIO(b"three words here\n")).cid
    executor = Executor(store, {"python": PythonRuntime(layers={})}, nacl.signing.SigningKey.generate())  # type: ignore[dict-item]
    outcome = executor.run(RunRequest(uuid.uuid4().hex, bundle, {"notes": notes}))
    assert outcome.outcome.is_ok, outcome.logs
    assert outcome.result is not None
    get_path(store, outcome.result, tmp_path / "result")
    seen = json.loads((tmp_path / "result" / "seen.json").read_text())
    assert seen["inputs"] == {"notes": {"path": "notes", "cid": str(notes), "kind": "file", "size": 17}}
    assert seen["read"] == "three words here\n" and seen["entries"] == ["notes"]
