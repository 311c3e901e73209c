"""A python bundle's own wheels: installed once into a read-only env, cached by content, bounded.

The wheel is built here, offline, with the venv's pip and setuptools; the agents run in the
real sandbox through the executor harness (cold and warm runtimes).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agents.bundle import pack
from agents.environment import agent_environment
from agents.errors import ManifestError
from agents.manifest import MAX_WHEELS, load
from agents.outcome import OutcomeKind
from agents.receipt import verify
from agents.wheelenv import WheelEnvironments, WheelInstallFailed
from sdk import Client, MissingPackageError
from tests.agents.harness import AgentHarness
from tests.node.test_api_ops import api  # noqa: F401 - the fixture

WHEEL = "tinypkg-1.2.0-py3-none-any.whl"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pure-python wheel built offline: ``tinypkg`` 1.2.0 with ``VALUE = 42``."""
    root = tmp_path_factory.mktemp("tinypkg")
    source = root / "src"
    (source / "tinypkg").mkdir(parents=True)
    (source / "tinypkg" / "__init__.py").write_text("VALUE = 42\n")
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "tinypkg"\nversion = "1.2.0"\n\n[tool.setuptools]\npackages = ["tinypkg"]\n'
    )
    out = root / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(out), str(source)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    built = out / WHEEL
    assert built.is_file(), list(out.iterdir())
    return built


def make_agent(root: Path, name: str, main: str, wheels: dict[str, bytes], requires: str = "") -> Path:
    agent = root / name
    (agent / "wheels").mkdir(parents=True)
    for filename, data in wheels.items():
        (agent / "wheels" / filename).write_bytes(data)
    (agent / "main.py").write_text(main)
    (agent / "mycel-agent.toml").write_text(
        f'name = "{name}"\nversion = "1.0.0"\nruntime = "python"\nentrypoint = "main.py"\n{requires}'
    )
    return agent


IMPORTS = "import tinypkg\nprint('value', tinypkg.VALUE, tinypkg.__file__)\n"


def test_agent_imports_its_wheel_and_the_env_is_built_once(harness: AgentHarness, wheel: Path) -> None:
    envs = WheelEnvironments(harness.root / "envs", 64 << 20)
    harness.executor.wheel_envs = envs
    data = {WHEEL: wheel.read_bytes()}
    one = make_agent(harness.root, "one", IMPORTS, data)
    first = harness.run(one)
    assert first.outcome.is_ok, (first.outcome, first.logs)
    assert b"value 42 " + str(envs.root).encode() in first.logs
    # another job, and another agent with the same wheels: the same environment, no second pip
    again = harness.run(one)
    other = harness.run(make_agent(harness.root, "two", IMPORTS + "print('other')\n", data))
    assert again.outcome.is_ok and other.outcome.is_ok, (again.outcome, other.outcome, other.logs)
    assert envs.builds == 1
    assert len([p for p in envs.root.iterdir() if not p.name.startswith(".")]) == 1


WRITES = """import os, tinypkg
env = os.path.dirname(os.path.dirname(tinypkg.__file__))
attempts = {
    "append": lambda: open(tinypkg.__file__, "a").write("VALUE = 0\\n"),
    "create": lambda: open(os.path.join(env, "planted.py"), "w").write("x = 1\\n"),
    "remove": lambda: os.remove(tinypkg.__file__),
}
for name, attempt in attempts.items():
    try:
        attempt()
    except OSError:
        continue
    raise SystemExit(f"{name} succeeded")
"""


def test_agent_cannot_write_into_its_wheel_env(harness: AgentHarness, wheel: Path) -> None:
    harness.executor.wheel_envs = envs = WheelEnvironments(harness.root / "envs", 64 << 20)
    done = harness.run(make_agent(harness.root, "writer", WRITES, {WHEEL: wheel.read_bytes()}))
    assert done.outcome.is_ok, (done.outcome, done.logs)
    (env,) = [p for p in envs.root.iterdir() if not p.name.startswith(".")]
    assert (env / "tinypkg" / "__init__.py").read_text() == "VALUE = 42\n"
    assert not (env / "planted.py").exists()


def test_requires_met_only_by_the_bundled_wheel_passes(harness: AgentHarness, wheel: Path) -> None:
    harness.executor.wheel_envs = WheelEnvironments(harness.root / "envs", 64 << 20)
    agent = make_agent(harness.root, "needs", IMPORTS, {WHEEL: wheel.read_bytes()}, 'requires = ["tinypkg>=1.2"]\n')
    assert agent_environment().unmet(("tinypkg>=1.2",))  # the node itself lacks it
    manifest = load(agent)
    assert manifest.requires == ("tinypkg>=1.2",) and manifest.node_requires == ()  # placement checks this
    done = harness.run(agent)
    assert done.outcome.is_ok, (done.outcome, done.logs)


def test_corrupt_wheel_fails_the_job_naming_it(harness: AgentHarness) -> None:
    harness.executor.wheel_envs = WheelEnvironments(harness.root / "envs", 64 << 20)
    broken = "broken-1.0-py3-none-any.whl"
    done = harness.run(make_agent(harness.root, "broken", "print('never')\n", {broken: b"not a zip"}))
    assert done.outcome.kind is OutcomeKind.FAILED and not done.outcome.fail_over
    assert broken in done.outcome.detail and "\n" not in done.outcome.detail
    assert b"never" not in done.logs
    assert verify(done.receipt).status == done.outcome.label


def test_a_requires_the_bundled_wheel_cannot_meet_is_refused(tmp_path: Path, wheel: Path) -> None:
    agent = make_agent(tmp_path, "old", IMPORTS, {WHEEL: wheel.read_bytes()}, 'requires = ["tinypkg>=2"]\n')
    with pytest.raises(ManifestError, match=re.escape("brings tinypkg 1.2.0")):
        load(agent)


def test_sdists_and_too_many_wheels_are_refused(tmp_path: Path) -> None:
    sdist = make_agent(tmp_path, "sdist", "", {"tinypkg-1.2.0.tar.gz": b"x"})
    with pytest.raises(ManifestError, match="wheels only"):
        load(sdist)
    many = make_agent(tmp_path, "many", "", {f"p{i}-1.0-py3-none-any.whl": b"" for i in range(MAX_WHEELS + 1)})
    with pytest.raises(ManifestError, match=f"at most {MAX_WHEELS} wheels"):
        load(many)
    (tmp_path / "toml").mkdir()
    shutil.copytree(sdist, tmp_path / "toml" / "a")
    with open(tmp_path / "toml" / "a" / "mycel-agent.toml", "a") as manifest:
        manifest.write('wheels = ["x-1.0-py3-none-any.whl"]\n')
    with pytest.raises(ManifestError, match="not a manifest field"):
        load(tmp_path / "toml" / "a")


def test_cache_evicts_the_least_recently_used_env(tmp_path: Path, wheel: Path) -> None:
    wheels_dir = tmp_path / "wheels"
    wheels_dir.mkdir()
    shutil.copy(wheel, wheels_dir / WHEEL)
    probe = WheelEnvironments(tmp_path / "probe", 64 << 20)
    with probe.use("size", wheels_dir, (WHEEL,)) as env:
        size = sum(p.stat().st_size for p in env.rglob("*") if p.is_file())
    envs = WheelEnvironments(tmp_path / "envs", size + size // 2)  # room for one environment
    with envs.use("a", wheels_dir, (WHEEL,)) as first:
        assert (first / "tinypkg" / "__init__.py").is_file()
    with envs.use("b", wheels_dir, (WHEEL,)):
        pass
    assert not first.exists() and (envs.root / "b").is_dir() and envs.builds == 2
    tiny = WheelEnvironments(tmp_path / "tiny", 1)
    with pytest.raises(WheelInstallFailed, match="wheel cache"), tiny.use("c", wheels_dir, (WHEEL,)):
        pass


def test_the_record_lists_the_wheels_and_bundles_without_keep_their_ids(tmp_path: Path, wheel: Path) -> None:
    with_wheels = load(make_agent(tmp_path, "rec", IMPORTS, {WHEEL: wheel.read_bytes()}))
    assert with_wheels.to_record()["wheels"] == [WHEEL]
    assert type(with_wheels).from_record(with_wheels.to_record()) == with_wheels
    plain = make_agent(tmp_path, "plain", IMPORTS, {})
    assert "wheels" not in load(plain).to_record()


async def test_the_sdk_pre_submit_check_counts_the_bundled_wheels(api: Any, tmp_path: Path, wheel: Path) -> None:  # noqa: F811
    client, service = api
    service.peers = type("Peers", (), {"snapshot": lambda self, connected: []})()
    service.network.peers = _no_peers
    agent = make_agent(tmp_path, "brings", IMPORTS, {WHEEL: wheel.read_bytes()}, 'requires = ["tinypkg>=1.2"]\n')
    agent_id = pack(agent, service.store).agent_id
    info = await (await client.get(f"/v1/agents/{agent_id}")).json()
    assert info["wheels"] == [WHEEL] and info["requires"] == ["tinypkg>=1.2"]
    async with Client(str(client.make_url(""))) as sdk:
        await sdk.check_requires(agent_id)  # the node lacks tinypkg, the bundle brings it: not refused
        lacking = make_agent(tmp_path, "lacks", IMPORTS, {}, 'requires = ["tinypkg>=1.2"]\n')
        with pytest.raises(MissingPackageError, match=re.escape("tinypkg>=1.2 (not installed)")):
            await sdk.check_requires(pack(lacking, service.store).agent_id)


async def _no_peers() -> list[str]:
    return []
