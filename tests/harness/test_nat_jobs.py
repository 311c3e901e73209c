"""Real nodes behind the harness NAT: AutoNAT finds them unreachable, they reserve a slot on the
relay node and announce their /p2p-circuit address; a job placed on a NAT'd edge node (its data is
there) from another NAT'd node goes through the relay, runs, and its result comes back. The
connection then ends direct by hole punching (DCUtR) where both NATs allow it, and stays relayed
through a symmetric NAT; ``mycel node status`` says which.

One planet serves the module: node start-up dominates on two cores."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.cluster import http_json
from node.harness import netns
from node.harness.planet import Planet, PlanetNode
from node.harness.topology import natted
from tests.harness.jobs import put_blob, submit, wait_final
from tests.harness.wan import skip_reason
from tests.support import REPO_ROOT, run_cli

WORDCOUNT = REPO_ROOT / "examples" / "wasm-wordcount"
FAST = {"MYCEL_P2P_AUTONAT_INTERVAL_SECONDS": "1", "MYCEL_NODE_ANNOUNCE_INTERVAL": "2"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    reason = skip_reason()
    if reason:
        pytest.skip(f"WAN harness: {reason}")
    for name in netns.orphans():
        netns.destroy(name)
    wan = Planet(natted(), tmp_path_factory.mktemp("natplanet"))
    try:
        wan.up()
        nodes = wan.start_nodes(["eu"], env=FAST | {"MYCEL_P2P_RELAY": "true"})
        nodes += wan.start_nodes(["us", "home", "home2", "cgn"], env=FAST)
        wan.wait_mesh(timeout=90)
        yield {n.name: n for n in nodes} | {"_planet": wan}
    finally:
        wan.down()
    assert wan.leftovers() == []


def _nat(node: PlanetNode) -> dict[str, Any]:
    info: dict[str, Any] = http_json(f"{node.api_url}/v1/node")["nat"]
    return info


def _wait(what: str, check: Any, timeout: float = 60.0, detail: Any = None) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"never: {what}" + (f" ({detail()})" if detail else "")
        time.sleep(0.2)
    return value


def _pack(node: PlanetNode) -> str:
    packed = run_cli(Path(node.data_dir), Path(node.data_dir), "agent", "pack", WORDCOUNT)
    assert packed.returncode == 0, packed.stderr
    return packed.stdout.strip()


def test_natd_nodes_learn_they_are_unreachable_and_announce_a_relayed_address(world: dict[str, Any]) -> None:
    relay = world["eu0"]
    for name in ("home0", "home20", "cgn0"):
        nat = _wait(f"{name} reserved a relay slot", lambda n=world[name]: (s := _nat(n))["relayed_addrs"] and s)
        assert nat["reachability"] == "private"
        assert nat["relayed_addrs"][0].startswith("/ip4/10.77.1.1/tcp/")
        assert f"/p2p/{relay.peer_id}/p2p-circuit/p2p/{world[name].peer_id}" in nat["relayed_addrs"][0]
        announced = _wait(  # and the others see it in its announcement
            "the relayed address announced",
            lambda n=world[name]: any(
                "/p2p-circuit/" in a
                for p in http_json(f"{world['us0'].api_url}/v1/peers")["peers"]
                if p["peer_id"] == n.peer_id
                for a in p.get("addrs", [])
            ),
        )
        assert announced
    assert _wait(
        "the relay and us0 are public",
        lambda: _nat(relay)["reachability"] == _nat(world["us0"])["reachability"] == "public",
    )
    relay_state = _nat(relay)["relay"]
    assert relay_state["serving"] and relay_state["reservations"] >= 3


@pytest.mark.parametrize(("requester", "ends"), [("home20", "direct"), ("cgn0", "relayed")])
def test_a_job_on_a_natd_edge_runs_through_the_relay_and_goes_direct_where_the_nat_allows(
    world: dict[str, Any], requester: str, ends: str
) -> None:
    client, edge = world[requester], world["home0"]
    _wait("reserved", lambda: _nat(edge)["relayed_addrs"] and _nat(client)["relayed_addrs"])
    agent = _pack(client)
    data = put_blob(edge.api_url, os.urandom(4000))  # only the edge holds the input
    assert edge.peer_id not in _nat(client)["connections"]  # two NATs: no way to dial directly
    job = wait_final(client.api_url, submit(client.api_url, {"agent": agent, "inputs": {"text": data}}))
    assert job["state"] == "done", job["transitions"]
    assert list(job["results"]) == [edge.peer_id]  # it ran where its data is, behind the NAT
    _wait(
        f"the connection {requester}<->home0 settles {ends}",
        lambda: _nat(client)["connections"].get(edge.peer_id) == ends and ends,
        timeout=30 if ends == "direct" else 5,
    )
    if ends == "relayed":  # a symmetric NAT: DCUtR made its attempt and failed; jobs still go through the relay
        _wait(
            "a hole punch tried and over",
            lambda: _punched(client, edge) or _punched(edge, client),
            timeout=90,  # up to three attempts of three rounds each, on a loaded host
            detail=lambda: (_nat(client)["hole_punches"], _nat(edge)["hole_punches"]),
        )
        again = wait_final(client.api_url, submit(client.api_url, {"agent": agent, "inputs": {"text": data}}))
        assert again["state"] == "done" and list(again["results"]) == [edge.peer_id], again["transitions"]
        assert _nat(client)["connections"].get(edge.peer_id) == "relayed"
    status = run_cli(Path(client.data_dir), Path(client.data_dir), "node", "status", "--api", client.api_url)
    assert status.returncode == 0, status.stderr
    assert "reachability: private (relayed at " in status.stdout
    if ends == "direct":
        assert f"  {edge.peer_id} direct" in status.stdout
    else:  # an idle relayed connection may be gone by the time the CLI asks (it is re-dialed on demand)
        assert f"  {edge.peer_id} direct" not in status.stdout
        assert f"  {edge.peer_id} relayed" in status.stdout or edge.peer_id not in status.stdout


def _punched(node: PlanetNode, other: PlanetNode) -> bool:
    """``node`` finished at least one DCUtR attempt towards ``other``."""
    punch = _nat(node)["hole_punches"].get(other.peer_id)
    return bool(punch and punch["attempts"] >= 1 and not punch["in_progress"])
