"""examples/federated: secure aggregation's arithmetic, its agents, and the hospital case on a
real 3-node cluster (accuracy against pooled training, bytes each site sent, the group's explain)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import runpy
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from nacl.public import PrivateKey

from sdk import JobFailedError, Keypair, SyncClient
from tests.node.test_cluster import http, metric
from tests.support import REPO_ROOT, CliRunner

EXAMPLE = REPO_ROOT / "examples" / "federated"


def _load(path: Path, name: str) -> ModuleType:
    """A module of the example by path (the libp2p wheel owns the top-level name ``examples``)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


secagg = _load(EXAMPLE / "site" / "secagg.py", "federated_secagg")


def _keys(names: list[str]) -> tuple[dict[str, bytes], dict[str, bytes]]:
    secrets = {name: PrivateKey.generate() for name in names}
    return {n: bytes(k) for n, k in secrets.items()}, {n: bytes(k.public_key) for n, k in secrets.items()}


def test_the_masked_sum_equals_the_plain_sum_within_fixed_point_precision() -> None:
    names = ["site-a", "site-b", "site-c", "site-d"]
    secrets, roster = _keys(names)
    rng = np.random.default_rng(1)
    updates = {name: rng.normal(0, 50, 257) for name in names}
    session = os.urandom(16)
    masked = [secagg.mask(updates[n], n, secrets[n], roster, session) for n in names]
    summed = secagg.decode(secagg.total(masked))
    plain = sum(updates.values())
    assert np.max(np.abs(summed - plain)) <= len(names) * 2.0 ** -(secagg.FRACTION_BITS + 1)
    assert np.max(np.abs(summed - plain)) > 0  # fixed point, not floats passed through


def test_a_single_masked_update_is_uncorrelated_with_the_true_update() -> None:
    names = ["site-a", "site-b", "site-c"]
    secrets, roster = _keys(names)
    true = np.linspace(-100, 100, 4096)  # strongly structured: any leak would show
    masked = secagg.mask(true, "site-b", secrets["site-b"], roster, os.urandom(16))
    as_unit = masked.astype(np.float64) / 2.0**64  # what the aggregator holds of one site, in [0, 1)
    assert abs(np.corrcoef(true, as_unit)[0, 1]) < 0.06
    assert abs(as_unit.mean() - 0.5) < 0.03  # spread over the whole ring, not near the encoded values
    assert np.all(np.abs(secagg.decode(masked) - true) > 1e3)  # decoding it alone gives noise
    again = secagg.mask(true, "site-b", secrets["site-b"], roster, os.urandom(16))
    assert abs(np.corrcoef(as_unit, again.astype(np.float64))[0, 1]) < 0.06  # a fresh session, fresh masks


def _agent(directory: Path, inputs: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run an example agent's code as the sandbox would ($MYCEL_IN, $MYCEL_OUT, its code on sys.path)."""
    out.mkdir(parents=True)
    with monkeypatch.context() as patch:
        patch.setenv("MYCEL_IN", str(inputs))
        patch.setenv("MYCEL_OUT", str(out))
        patch.syspath_prepend(str(directory))
        runpy.run_path(str(directory / "agent.py"), run_name="__main__")


def test_a_site_that_drops_out_fails_the_round_and_the_next_round_runs_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    names = ["site-a", "site-b", "site-c"]
    secrets, public = _keys(names)
    rng = np.random.default_rng(2)
    records = {name: (rng.normal(5, 2, (20 + i, 4)), rng.integers(0, 2, 20 + i)) for i, name in enumerate(names)}
    for name, (x, y) in records.items():
        data = tmp_path / "sites" / name
        data.mkdir(parents=True)
        np.save(data / "x.npy", x)
        np.save(data / "y.npy", y)
        (data / "site.json").write_text(json.dumps({"name": name}))
        (data / "secret.key").write_bytes(secrets[name])

    def round_inputs(label: str, roster: list[str]) -> Path:
        directory = tmp_path / label / "round"
        directory.mkdir(parents=True)
        spec = {"round": 0, "session": os.urandom(16).hex(), "mode": "stats",
                "roster": {n: public[n].hex() for n in roster}}  # fmt: skip
        (directory / "round.json").write_text(json.dumps(spec))
        return directory

    def site_run(label: str, name: str, round_dir: Path) -> Path:
        inputs = tmp_path / label / f"in-{name}"
        inputs.mkdir()
        (inputs / "data").symlink_to(tmp_path / "sites" / name)
        (inputs / "round").symlink_to(round_dir)
        _agent(EXAMPLE / "site", inputs, tmp_path / label / f"out-{name}", monkeypatch)
        return tmp_path / label / f"out-{name}"

    def aggregate(label: str, round_dir: Path, results: dict[str, Path]) -> Path:
        inputs = tmp_path / label / "in-aggregate"
        inputs.mkdir()
        (inputs / "round").symlink_to(round_dir)
        for name, result in results.items():
            (inputs / name).symlink_to(result)
        _agent(EXAMPLE / "secure-sum", inputs, tmp_path / label / "aggregate", monkeypatch)
        return tmp_path / label / "aggregate"

    everyone = round_inputs("r1", names)
    partial = {name: site_run("r1", name, everyone) for name in names[:2]}  # site-c dropped out
    with pytest.raises(SystemExit) as exit_info:
        aggregate("r1", everyone, partial)
    assert exit_info.value.code == 1
    assert "missing ['site-c']" in capsys.readouterr().out  # refused: the masks would not cancel

    survivors = round_inputs("r2", names[:2])
    results = {name: site_run("r2", name, survivors) for name in names[:2]}
    summed = np.load(aggregate("r2", survivors, results) / "sum.npy")
    x = np.vstack([records[n][0] for n in names[:2]])
    expected = np.concatenate([x.sum(axis=0), (x * x).sum(axis=0), [len(x)]])
    assert np.allclose(summed, expected, atol=1e-4)


def test_the_hospital_case_on_three_nodes(cluster: Any, mycel: CliRunner, tmp_path: Path) -> None:
    """Over private data: each share is a private dataset its site's node alone holds, under a
    policy that approves only the training agent, the consortium's client key and an update-sized
    result; every run is checked by the holder itself, and nothing else gets the records."""
    example = _load(EXAMPLE / "run.py", "federated_run")
    nodes = cluster(3, regions=list(example.REGIONS))
    apis = {site: node.api_url for site, node in zip(example.SITES, nodes, strict=True)}
    holder = {site: node.peer_id for site, node in zip(example.SITES, nodes, strict=True)}
    lines: list[str] = []
    federation = example.Federation(apis, tmp_path / "work", say=lines.append)

    async def rounds() -> None:
        await federation.setup()
        await federation.standardise()
        for _ in range(2):
            await federation.train()

    asyncio.run(rounds())
    pooled = federation.pooled_accuracy()
    final = federation.rounds[-1].accuracy
    assert final is not None and pooled - final <= 0.02, lines  # the goal: within 2 points of pooled training
    assert final > 0.9
    for done in federation.rounds:  # only update-sized transfers: no site's records ever left it
        for site, sent in done.sent.items():
            assert sent <= example.MAX_UPDATE_BYTES < federation.dataset_bytes[site] / 4, (done, lines)
            terms = done.privacy[site]  # signed by the holder into its receipt: its policy, the cap, what left
            assert terms is not None and terms.released == "result", terms
            assert [str(c) for c in terms.policies] == [federation.policies[site]]
            assert terms.result_bytes <= terms.max_result_bytes == example.MAX_UPDATE_BYTES
    assert sum(done.sent[site] for done in federation.rounds for site in example.SITES) > 0  # updates did travel

    explain = mycel("job", "explain", federation.rounds[-1].group_id, "--api", apis["site-a"])
    assert explain.returncode == 0, explain.stderr
    blocks = explain.stdout.split("== ")[1:]
    assert [block.split(":")[0] for block in blocks] == [*example.SITES, "(aggregate)"]
    for site, block in zip(example.SITES, blocks, strict=False):
        chosen = [line for line in block.splitlines() if line.startswith("chosen")]
        assert len(chosen) == 1 and holder[site] in chosen[0], block  # each run at its dataset's holder

    # nobody else gets a site's records: another node asks for them, an HTTP client asks
    site_a, site_b = nodes[0], nodes[1]
    dataset = federation.datasets["site-a"]
    sent_before, stored_before = (
        metric(site_a.api_url, "mycel_bytes_out_total"),
        metric(site_b.api_url, "mycel_blocks_stored_total"),
    )
    status, _ = http("POST", f"{site_b.api_url}/v1/pins/{dataset}", headers={"Content-Type": "application/json"})
    assert status == 404  # the holder answers site-b as if it lacked the data: nobody has it
    assert metric(site_b.api_url, "mycel_blocks_stored_total") == stored_before
    assert http("GET", f"{site_a.api_url}/v1/blobs/{dataset}")[0] == 403
    assert http("GET", f"{site_b.api_url}/v1/blobs/{dataset}")[0] == 404
    assert metric(site_a.api_url, "mycel_bytes_out_total") == sent_before  # not one block left site-a
    assert metric(site_a.api_url, 'mycel_private_refused_total{reason="http"}') >= 1

    # an agent the policy does not approve (the aggregator, over raw records) is refused with the reason
    with SyncClient(site_a.api_url) as client, pytest.raises(JobFailedError, match="is not approved by the policy"):
        client.run(federation.aggregator, {"data": dataset}, client_key=federation.client_key, timeout=60)
    with SyncClient(site_a.api_url) as client, pytest.raises(JobFailedError, match="is not listed by the policy"):
        client.run(federation.agent, {"data": dataset}, client_key=Keypair.generate(), timeout=60)
    assert metric(site_a.api_url, "mycel_bytes_out_total") == sent_before
    assert metric(site_a.api_url, 'mycel_private_refused_total{reason="not_granted"}') >= 2


def test_with_dp_terms_a_sites_update_is_clipped_and_noised_at_the_site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The site agent under the node-given DP terms: its change to the global model is clipped to
    the bound, then noise of noise_multiplier * clip is added (one-site roster: no masks to undo)."""
    secrets, public = _keys(["site-a"])
    rng = np.random.default_rng(3)
    data, round_dir = tmp_path / "data", tmp_path / "round"
    data.mkdir()
    round_dir.mkdir()
    np.save(data / "x.npy", rng.normal(0, 1, (200, 30)))
    np.save(data / "y.npy", rng.integers(0, 2, 200).astype(np.float64))
    (data / "site.json").write_text(json.dumps({"name": "site-a"}))
    (data / "secret.key").write_bytes(secrets["site-a"])
    start = rng.normal(0, 0.1, 31)
    np.save(round_dir / "model.npy", start)
    spec = {"round": 1, "session": os.urandom(16).hex(), "mode": "train", "roster": {"site-a": public["site-a"].hex()},
            "mean": [0.0] * 30, "std": [1.0] * 30, "lr": 0.1, "batch": 16, "l2": 1e-3}  # fmt: skip
    (round_dir / "round.json").write_text(json.dumps(spec))
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "data").symlink_to(data)
    (inputs / "round").symlink_to(round_dir)

    def change(label: str, *args: str) -> np.ndarray:
        monkeypatch.setattr(sys, "argv", ["agent.py", *args])
        _agent(EXAMPLE / "site", inputs, tmp_path / label, monkeypatch)
        vector = secagg.decode(np.frombuffer((tmp_path / label / "update.bin").read_bytes(), dtype="<u8"))
        n = vector[-1]
        assert n == 200
        return np.asarray(vector[:-1] / n - start)

    plain = change("plain")
    assert np.linalg.norm(plain) > 0.25  # an epoch moves the model well beyond the bound below
    clipped = change("clipped", "--dp-clip=0.1", "--dp-noise=0.001")
    assert abs(np.linalg.norm(clipped) - 0.1) < 0.01  # clipped to the bound ...
    assert np.dot(clipped, plain) / (np.linalg.norm(clipped) * np.linalg.norm(plain)) > 0.99  # ... same direction
    noised = change("noised", "--dp-clip=0.1", "--dp-noise=2.0")
    residual = noised - clipped * 1.0  # the same clipped step plus noise of std 0.2 per coordinate
    assert 0.12 < float(np.std(residual)) < 0.3
    again = change("again", "--dp-clip=0.1", "--dp-noise=2.0")
    assert not np.allclose(again, noised)  # fresh noise per run, from the OS's randomness
