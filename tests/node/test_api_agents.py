"""Agents by name, the agent environment and the job list's agent filter, through the real aiohttp
app in-process (a process would add nothing these checks look at), and the SDK against it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents.bundle import pack
from agents.environment import agent_environment
from sdk import AgentNotFoundError, Client, MissingPackageError
from tests.node.test_api_ops import api  # noqa: F401 - the fixture


def _deploy(service: Any, root: Path, version: str, requires: str = "") -> str:
    bundle = root / f"greeter-{version}"
    bundle.mkdir()
    (bundle / "main.py").write_text("print('hi')\n")
    (bundle / "mycel-agent.toml").write_text(
        f'name = "greeter"\nversion = "{version}"\nruntime = "python"\nentrypoint = "main.py"\n{requires}'
    )
    return str(pack(bundle, service.store).agent_id)


async def test_an_agent_resolves_by_name_and_version(api: Any, tmp_path: Path) -> None:  # noqa: F811
    client, service = api
    old, new = _deploy(service, tmp_path, "1.2.0"), _deploy(service, tmp_path, "1.10.0")
    newest = await (await client.get("/v1/agents/greeter")).json()
    assert newest["agent"] == new and newest["version"] == "1.10.0" and newest["requires"] == []
    assert (await (await client.get("/v1/agents/greeter@1.2.0")).json())["agent"] == old
    assert (await (await client.get(f"/v1/agents/{old}")).json())["version"] == "1.2.0"
    missing = await client.get("/v1/agents/wordcount")
    body = await missing.json()
    assert missing.status == 404 and body["error"] == "no_agent"
    assert body["detail"] == "no agent named wordcount on this node (deploy it with 'mycel agent deploy DIR')"
    assert (await client.get("/v1/agents/" + "a" * 300)).status == 400

    async with Client(str(client.make_url(""))) as sdk:
        assert str(await sdk.resolve_agent("greeter@1.2.0")) == old
        with pytest.raises(AgentNotFoundError) as raised:
            await sdk.run("wordcount", wait=False)
    assert str(raised.value) == "no agent named wordcount on this node (deploy it with 'mycel agent deploy DIR')"


async def test_the_job_list_filters_by_agent_name(api: Any, tmp_path: Path) -> None:  # noqa: F811
    client, service = api
    _deploy(service, tmp_path, "0.1.0")
    assert (await client.get("/v1/jobs", params={"agent": "greeter"})).status == 200
    unknown = await client.get("/v1/jobs", params={"agent": "nobody"})
    assert unknown.status == 404 and "no agent named nobody" in (await unknown.json())["detail"]


async def test_env_lists_the_agent_environment(api: Any) -> None:  # noqa: F811
    client, _ = api
    env = await (await client.get("/v1/env")).json()
    assert env == agent_environment().to_json()
    assert env["python"]["packages"]["numpy"].startswith("2.") and len(env["hash"]) == 64


async def test_a_missing_package_fails_before_the_job_is_sent(api: Any, tmp_path: Path) -> None:  # noqa: F811
    client, service = api
    service.peers = type("Peers", (), {"snapshot": lambda self, connected: []})()
    service.network.peers = _no_peers
    agent = _deploy(service, tmp_path, "0.2.0", 'requires = ["numpy>=99", "numpy>=2"]')
    async with Client(str(client.make_url(""))) as sdk:
        with pytest.raises(MissingPackageError) as raised:
            await sdk.run(agent, wait=False)
    message = str(raised.value)
    assert message.startswith("agent greeter requires numpy>=99 (has 2.") and "mycel agent env --api" in message
    assert (await (await client.get("/v1/jobs")).json())["jobs"] == []


async def _no_peers() -> list[str]:
    return []
