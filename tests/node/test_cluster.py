"""Real node processes talking real libp2p on 127.0.0.1 (the issue's integration tests)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from node import announce
from node.cluster import free_port, http_json, start_node_process, stop_process, wait_answering, wait_for_peers
from node.identity import NodeIdentity, load_or_create
from tests.support import announcement_payload, gossip_peer, seeded_bytes


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def metric(api_url: str, line_prefix: str) -> float:
    _, text = http("GET", f"{api_url}/metrics")
    for line in text.decode().splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.split()[-1])
    return 0.0


def test_three_nodes_peer_and_move_a_blob(cluster: Any, tmp_path: Path) -> None:
    started = time.monotonic()
    nodes = cluster(3, timeout=10)  # every node sees the other two within 10 s
    assert time.monotonic() - started < 30
    for node in nodes:
        peers = http_json(f"{node.api_url}/v1/peers")["peers"]
        assert {p["peer_id"] for p in peers if p["alive"]} == {n.peer_id for n in nodes} - {node.peer_id}

    data = seeded_bytes("blob", 1_500_000)
    status, body = http("POST", f"{nodes[0].api_url}/v1/blobs", data, {"Content-Type": "application/octet-stream"})
    assert status == 201
    cid = json.loads(body)["cid"]
    providers = http_json(f"{nodes[2].api_url}/v1/blobs/{cid}/providers")["providers"]
    assert providers == [nodes[0].peer_id]
    status, downloaded = http("GET", f"{nodes[2].api_url}/v1/blobs/{cid}")
    assert status == 200 and downloaded == data
    assert metric(nodes[2].api_url, "mycel_blocks_stored_total") == 7
    assert metric(nodes[0].api_url, "mycel_blocks_served_total") == 7


def test_directory_upload_as_tar_round_trips(cluster: Any, tmp_path: Path) -> None:
    import io
    import tarfile

    nodes = cluster(2)
    src = tmp_path / "dir"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha")
    (src / "sub" / "b.bin").write_bytes(seeded_bytes("b", 300_000))
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for path in sorted(src.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(src)), recursive=False)
    status, body = http(
        "POST", f"{nodes[0].api_url}/v1/blobs", archive.getvalue(), {"Content-Type": "application/x-tar"}
    )
    assert status == 201
    from storage.unixfs.importer import NullSink, import_path

    assert json.loads(body)["cid"] == str(import_path(src, NullSink()).cid)  # same CID as `mycel cid dir`
    status, tar_bytes = http("GET", f"{nodes[1].api_url}/v1/blobs/{json.loads(body)['cid']}")
    assert status == 200
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        member = tar.extractfile("sub/b.bin")
        assert member is not None and member.read() == (src / "sub" / "b.bin").read_bytes()


def test_restart_keeps_peer_id_and_rejoins(cluster: Any) -> None:
    """Restart the bootstrap node itself: it keeps its peer ID and the others re-dial it."""
    nodes = cluster(3)
    victim = nodes[0]  # everyone else lists it as their bootstrap peer
    assert stop_process(victim.pid) is False  # SIGTERM was enough
    # it comes back knowing one peer; the other must re-dial it (it is that node's bootstrap peer)
    proc = start_node_process(Path(victim.data_dir), victim.listen, victim.api, [nodes[1].multiaddr], victim.region)
    try:
        wait_answering(proc, victim.api_url, Path(victim.data_dir) / "node.log")
        wait_for_peers(victim.api_url, 2, timeout=30)
        assert http_json(f"{victim.api_url}/v1/node")["peer_id"] == victim.peer_id
        expected = {nodes[1].peer_id, nodes[2].peer_id}
        deadline = time.monotonic() + 15  # was ~60 s late: py-libp2p refused re-dials (node/p2p/host.py)
        while time.monotonic() < deadline:
            connected = {p["peer_id"] for p in http_json(f"{victim.api_url}/v1/peers")["peers"] if p["connected"]}
            if connected == expected:
                break
            time.sleep(0.2)
        assert connected == expected
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0  # clean shutdown exits 0


def test_forged_and_malformed_announcements_are_rejected_and_counted(cluster: Any) -> None:
    nodes = cluster(2)
    target = nodes[0]

    def rejected() -> tuple[float, float]:
        return (
            metric(target.api_url, 'mycel_gossip_rejected_total{reason="bad_signature"}'),
            metric(target.api_url, 'mycel_gossip_rejected_total{reason="malformed"}'),
        )

    async def inject() -> None:
        injector = gossip_peer(NodeIdentity(nacl.signing.SigningKey.generate()))
        await injector.start()
        try:
            await injector.connect(target.multiaddr)
            mallory = NodeIdentity.from_seed(bytes([9]) * 32)
            claims_injector = announcement_payload(injector.peer_id, addrs=[], region="x")
            deadline = time.monotonic() + 60
            # publish until the target has counted both (the gossip mesh forms after connecting)
            while min(await asyncio.to_thread(rejected)) < 1:
                assert time.monotonic() < deadline, "the target never saw the forged announcements"
                await injector.publish(announce.TOPIC, announce.sign(mallory, claims_injector))  # bad signature
                await injector.publish(announce.TOPIC, b"\xa1\x61x")  # malformed
                await asyncio.sleep(0.25)
        finally:
            await injector.stop()

    asyncio.run(inject())
    rejected_sig, rejected_bad = rejected()
    assert rejected_sig >= 1 and rejected_bad >= 1
    peers = http_json(f"{target.api_url}/v1/peers")["peers"]
    assert [p["peer_id"] for p in peers] == [nodes[1].peer_id]  # the forger never entered the table


@pytest.fixture
def guarded_node(tmp_path: Path) -> Any:
    """One node with an API token and a 1000-byte upload limit."""
    data_dir = tmp_path / "guarded"
    peer_id = load_or_create(data_dir).peer_id
    api = f"127.0.0.1:{free_port()}"
    env = {"MYCEL_API_TOKEN": "s3cret", "MYCEL_API_MAX_UPLOAD_BYTES": "1000"}
    proc = start_node_process(data_dir, f"/ip4/127.0.0.1/tcp/{free_port()}", api, [], "eu", env)
    url = f"http://{api}"
    wait_answering(proc, url, data_dir / "node.log")
    yield url, peer_id
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0


def test_api_bad_inputs_are_4xx_json(guarded_node: Any) -> None:
    url, peer_id = guarded_node
    octet = {"Content-Type": "application/octet-stream"}
    auth = {"Authorization": "Bearer s3cret"}
    cases = [
        ("GET", "/v1/blobs/not-a-cid", None, auth, 400, "invalid_cid"),
        ("GET", "/v1/blobs/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", None, auth, 404, "not_found"),
        ("GET", "/v1/blobs/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", None, {}, 401, "unauthorized"),
        ("GET", "/v1/pins", None, {}, 401, "unauthorized"),  # reads outside api.public_reads need the token
        ("POST", "/v1/blobs", b"x", octet, 401, "unauthorized"),
        ("POST", "/v1/blobs", b"x", {**octet, "Authorization": "Bearer wrong"}, 401, "unauthorized"),
        ("POST", "/v1/blobs", b"x", {"Content-Type": "text/plain", **auth}, 415, "unsupported_media_type"),
        ("POST", "/v1/blobs", b"x" * 5000, {**octet, **auth}, 413, "payload_too_large"),
        ("POST", "/v1/blobs", b"not a tar" * 10, {"Content-Type": "application/x-tar", **auth}, 400, "bad_tar"),
        (
            "DELETE",
            "/v1/pins/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
            None,
            auth,
            404,
            "not_found",
        ),
        ("GET", "/v1/nope", None, {}, 404, "not_found"),
        ("PUT", "/v1/node", b"", {}, 405, "method_not_allowed"),
    ]
    for method, path, body, headers, status, error in cases:
        got_status, got_body = http(method, url + path, body, headers)
        assert (got_status, json.loads(got_body)["error"]) == (status, error), (method, path)
        assert "detail" in json.loads(got_body)
    status, body = http("POST", f"{url}/v1/blobs", b"fine", {**octet, **auth})
    assert status == 201
    assert http_json(f"{url}/v1/node")["peer_id"] == peer_id
    openapi = http_json(f"{url}/v1/openapi.json")
    assert openapi["openapi"].startswith("3.") and "/v1/blobs/{cid}" in openapi["paths"]


def test_node_status_and_doctor_against_a_running_node(cluster: Any, mycel: Any, tmp_path: Path) -> None:
    nodes = cluster(2)
    status = mycel("node", "status", "--data-dir", nodes[0].data_dir)
    assert status.returncode == 0, status.stderr
    assert nodes[0].peer_id in status.stdout and "peers: 1 alive" in status.stdout
    doctor = mycel("node", "doctor", "--data-dir", nodes[0].data_dir)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "ok    api" in doctor.stdout and "ok    listen" in doctor.stdout

    config = tmp_path / "bad.toml"
    config.write_text(
        '[node]\nbootstrap = ["/ip4/127.0.0.1/tcp/1/p2p/12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq"]\n'
    )
    failing = mycel("node", "doctor", "--config", config, "--data-dir", nodes[1].data_dir)
    assert failing.returncode == 1 and "fail  bootstrap" in failing.stdout
    assert failing.stderr.startswith("error: 1 check(s) failed")
    stopped = mycel("node", "status", "--data-dir", tmp_path / "nothing-here")
    assert stopped.returncode == 1 and "no node is running" in stopped.stderr


def test_cluster_cli_up_and_down_leaves_no_process(mycel: Any, tmp_path: Path) -> None:
    from node.cluster import read_cluster_file

    directory = tmp_path / "cli-cluster"
    up = mycel("cluster", "up", "--nodes", "2", "--dir", directory, timeout=120)
    assert up.returncode == 0, up.stderr
    pids = [node.pid for node in read_cluster_file(directory)]
    assert up.stdout.count("http://127.0.0.1:") == 2
    down = mycel("cluster", "down", "--dir", directory)
    assert down.returncode == 0 and "stopped 2 nodes" in down.stdout
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]
    again = mycel("cluster", "down", "--dir", directory)
    assert again.returncode == 1 and "no cluster" in again.stderr


def test_cluster_up_refuses_a_running_cluster(cluster: Any, mycel: Any) -> None:
    (node,) = cluster(1)
    directory = cluster.directories[0]
    again = mycel("cluster", "up", "--nodes", "1", "--dir", directory)
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1 and "already running" in again.stderr and str(node.pid) in again.stderr
    assert http_json(f"{node.api_url}/v1/node")["peer_id"] == node.peer_id  # left running, untouched


def test_cluster_up_starts_nodes_at_once_and_registers_each_pid(cluster: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from node import cluster as cluster_module
    from node.cluster import read_cluster_file

    real_start = cluster_module.start_node_process
    spawned: list[tuple[int, str]] = []  # (pid, api) in spawn order
    seen: list[tuple[list[int], bool, bool]] = []  # at each spawn: PIDs on file, node0 up, a later node up

    def answers(api: str) -> bool:
        try:
            http_json(f"http://{api}/v1/node", timeout=1)
            return True
        except OSError:
            return False

    def start(data_dir: Path, listen: str, api: str, *args: Any, **kwargs: Any) -> Any:
        cluster_file = data_dir.parent / "cluster.json"
        registered = [n.pid for n in read_cluster_file(data_dir.parent)] if cluster_file.exists() else []
        first_up = bool(spawned) and answers(spawned[0][1])
        seen.append((registered, first_up, any(answers(other) for _, other in spawned[1:])))
        proc = real_start(data_dir, listen, api, *args, **kwargs)
        spawned.append((proc.pid, api))
        return proc

    monkeypatch.setattr(cluster_module, "start_node_process", start)
    nodes = cluster(3)
    assert [pid for pid, _ in spawned] == [node.pid for node in nodes]
    for position, (registered, first_up, later_up) in enumerate(seen):
        assert registered == [pid for pid, _ in spawned[:position]]  # each PID on file as soon as it is spawned
        assert first_up == (position > 0) and not later_up  # the first alone, then the others all at once


def test_cluster_up_kills_a_node_whose_api_never_answers(cluster: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    from node import cluster as cluster_module
    from node.cluster import process_alive
    from node.errors import NodeError

    real_start = cluster_module.start_node_process
    pids: list[int] = []

    def start(data_dir: Path, *args: Any, **kwargs: Any) -> Any:
        if data_dir.name == "node0":  # runs, but never serves its API (the first: no real start to wait for)
            proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
        else:
            proc = real_start(data_dir, *args, **kwargs)
        pids.append(proc.pid)
        return proc

    monkeypatch.setattr(cluster_module, "start_node_process", start)
    with pytest.raises(NodeError, match=r"did not answer in time"):
        cluster(2, start_timeout=8)  # node0 never answers: no need to wait long
    assert len(pids) == 1 and not process_alive(pids[0])  # the others never start; the silent one is killed
