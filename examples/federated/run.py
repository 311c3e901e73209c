"""The hospital case, end to end: federated logistic regression with secure aggregation.

Three nodes in three regions each hold one hospital's private share of scikit-learn's
breast-cancer data set (split non-IID: the sites see very different case mixes), put as a
private dataset under its hospital's owner-signed policy: that hospital's node is the only
holder, only the training agent may run on it, only the consortium's client key may submit,
and only a result up to the size of a model update may leave, to the coordinating node. Each
round
is one group job through the SDK: the ``site`` agent runs at each hospital's own node (one
local epoch from the global model) and returns only its update, masked for secure
aggregation; the ``secure-sum`` agent adds the masked updates (the masks cancel) and averages
them by sample count (FedAvg). Round 0 computes the feature scaling the same way (sums of x
and x^2), so no site reveals even its feature statistics. The client keeps a held-out test
split and prints accuracy per round, the accuracy of the same model trained on all the data
pooled in one place, and the bytes each site's node sent to peers (model updates only).

    python examples/federated/run.py [--rounds 3] [--drop] [--dp Z [--clip C]]

starts a local 3-node cluster in a temporary directory and stops it at the end; ``--drop``
then stops one hospital's node and shows that round failing cleanly and the next one
running without it. ``--dp Z`` trains with differential privacy: each site's update clipped to
``--clip`` and Gaussian noise of Z times that added at the site; the node records each run's
privacy loss from those terms, and the client prints the total over the rounds (zCDP composition).
Tests import this file by path (the libp2p wheel owns the top-level
name ``examples``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # the repository root: the SDK and the cluster launcher

from nacl.public import PrivateKey  # noqa: E402

from sdk import Client, Keypair, PolicyTerms  # noqa: E402
from sdk.errors import NodeUnreachableError  # noqa: E402
from storage.cid import CID  # noqa: E402
from storage.privacy.dp import DpTerms  # noqa: E402

SITES = ("site-a", "site-b", "site-c")
REGIONS = ("eu-west", "us-east", "ap-south")
CASE_MIX = {0: (0.6, 0.1, 0.3), 1: (0.1, 0.6, 0.3)}  # share of each label per site: non-IID
HYPER = {"lr": 0.1, "batch": 16, "l2": 1e-3}
SEED = 7
MAX_UPDATE_BYTES = 4096  # what one site may send per round: an update (~260 B) and the summed model


def split() -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    """The sites' shares (non-IID by label) and the client's held-out test split."""
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(y))
    test, train = order[:114], order[114:]
    shares: list[list[int]] = [[] for _ in SITES]
    for label, proportions in CASE_MIX.items():
        rows = train[y[train] == label]
        cuts = np.cumsum([int(p * len(rows)) for p in proportions])[:-1]
        for site, part in enumerate(np.split(rows, cuts)):
            shares[site] += part.tolist()
    sites = {name: (x[rows], y[rows].astype(np.float64)) for name, rows in zip(SITES, shares, strict=True)}
    return sites, x[test], y[test]


def accuracy(w: np.ndarray, x: np.ndarray, y: np.ndarray, mean: np.ndarray, std: np.ndarray) -> float:
    features = np.hstack([(x - mean) / std, np.ones((len(y), 1))])
    return float(((features @ w > 0) == y).mean())


def pooled_model(shares: dict[str, tuple[np.ndarray, np.ndarray]], epochs: int = 50) -> tuple[np.ndarray, Any, Any]:
    """The baseline: the same logistic regression trained on all the sites' records in one place."""
    x = np.vstack([share[0] for share in shares.values()])
    y = np.concatenate([share[1] for share in shares.values()])
    mean, std = x.mean(axis=0), x.std(axis=0)
    features = np.hstack([(x - mean) / std, np.ones((len(y), 1))])
    w = np.zeros(features.shape[1])
    for epoch in range(epochs):
        order = np.random.default_rng(epoch).permutation(len(y))
        for start in range(0, len(y), HYPER["batch"]):
            rows = order[start : start + int(HYPER["batch"])]
            predicted = 1.0 / (1.0 + np.exp(-(features[rows] @ w)))
            w = w - HYPER["lr"] * (features[rows].T @ (predicted - y[rows]) / len(rows) + HYPER["l2"] * w)
    return w, mean, std


def bytes_out(api_url: str) -> float:
    """Block bytes this node has sent to peers (its traffic counter; 0 for a node that is down)."""
    try:
        with urllib.request.urlopen(f"{api_url}/metrics", timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("mycel_bytes_out_total "):
            return float(line.split()[-1])
    return 0.0


@dataclass
class Round:
    number: int
    group_id: str
    accuracy: float | None
    sent: dict[str, float]  # site -> block bytes its node sent during the round
    privacy: dict[str, Any] = field(default_factory=dict)  # site -> its run's signed receipt's privacy terms
    epsilon: dict[str, float] = field(default_factory=dict)  # site -> the DP loss the node recorded for its run


@dataclass
class Federation:
    """The client's side of the consortium: one SDK client per hospital's node, the first coordinating."""

    apis: dict[str, str]  # site name -> its node's API URL
    workdir: Path
    say: Any = print
    shares: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    datasets: dict[str, str] = field(default_factory=dict)  # site -> dataset CID (on its own node only)
    dataset_bytes: dict[str, int] = field(default_factory=dict)
    public: dict[str, str] = field(default_factory=dict)  # site -> X25519 public key (hex)
    rounds: list[Round] = field(default_factory=list)
    owners: dict[str, Keypair] = field(default_factory=dict)  # site -> the hospital's owner key (signs its policy)
    client_key: Keypair = field(default_factory=Keypair.generate)  # the consortium's: signs each run's access proof
    peers: dict[str, str] = field(default_factory=dict)  # site -> its node's peer ID
    policies: dict[str, str] = field(default_factory=dict)  # site -> the CID of its owner-signed policy
    dp: DpTerms | None = None  # differential privacy of the training rounds' updates
    model: np.ndarray = field(default_factory=lambda: np.zeros(31))
    mean: np.ndarray = field(default_factory=lambda: np.zeros(30))
    std: np.ndarray = field(default_factory=lambda: np.ones(30))

    async def setup(self) -> None:
        """Each hospital puts its own share (and its own secret key) on its own node, as a private
        dataset under a policy its own owner key signs; both agents are deployed on every node, so
        no node fetches code from another during a round."""
        self.shares, self.test_x, self.test_y = split()
        for name, api in self.apis.items():
            async with Client(api) as client:
                self.peers[name] = str((await client.node())["peer_id"])
        coordinator = self.peers[next(iter(self.apis))]
        for name, (x, y) in self.shares.items():
            directory = self.workdir / name
            directory.mkdir(parents=True)
            np.save(directory / "x.npy", x)
            np.save(directory / "y.npy", y)
            (directory / "site.json").write_text(json.dumps({"name": name}))
            key = PrivateKey.generate()  # the site's own: it never leaves its dataset
            (directory / "secret.key").write_bytes(bytes(key))
            self.public[name] = bytes(key.public_key).hex()
            self.dataset_bytes[name] = sum(p.stat().st_size for p in directory.iterdir())
            async with Client(self.apis[name]) as client:
                self.agent = str(await client.deploy(HERE / "site"))
                self.aggregator = str(await client.deploy(HERE / "secure-sum"))
                self.owners[name] = Keypair.generate()
                terms = PolicyTerms(holders=(self.peers[name],), agents=(CID.parse(self.agent),),
                                    clients=(self.client_key.id,), max_result_bytes=MAX_UPDATE_BYTES,
                                    release_to=(coordinator,))  # fmt: skip
                self.datasets[name] = str(await client.put(directory, terms, self.owners[name]))
                self.policies[name] = str((await client.policy(self.datasets[name]))["policy"])

    async def _round(self, number: int, mode: str, sites: list[str]) -> tuple[str, np.ndarray, dict[str, float]]:
        """One group job over ``sites``; returns its id, the aggregate's mean vector and the bytes sent."""
        directory = self.workdir / f"round-{number}-{mode}-{'-'.join(sites)}"
        directory.mkdir()
        spec = {"round": number, "session": os.urandom(16).hex(), "mode": mode,
                "roster": {s: self.public[s] for s in sites},
                "mean": self.mean.tolist(), "std": self.std.tolist(), **HYPER}  # fmt: skip
        (directory / "round.json").write_text(json.dumps(spec))
        np.save(directory / "model.npy", self.model)
        for site in sites:  # public round input, on every node: nobody fetches it during the round
            with contextlib.suppress(NodeUnreachableError):  # a site that is down: its run will fail
                async with Client(self.apis[site]) as client:
                    round_cid = await client.put(directory)
        before = {site: bytes_out(self.apis[site]) for site in sites}
        started = time.monotonic()
        coordinator = self.apis[sites[0]]
        async with Client(coordinator) as client:
            group = await client.run_group(self.agent, {s: self.datasets[s] for s in sites}, self.aggregator,
                                           shared={"round": round_cid}, timeout=120, wait=False,
                                           client_key=self.client_key,
                                           dp=self.dp if mode == "train" else None)  # fmt: skip
            try:
                await group.wait(120)
            finally:
                self.last_group = group.job_id
            signed = await group.verified_receipts()  # every run's receipt and the aggregator's, signatures checked
            result = await group.result(directory / "result")
        sent = {site: bytes_out(self.apis[site]) - before[site] for site in sites}
        self.seconds = time.monotonic() - started
        self.last_privacy = {site: signed[site].privacy for site in sites}  # the holder's terms, as it signed them
        self.last_epsilon = {site: float(run["dp"]["epsilon"]) for site, run in group.runs.items() if "dp" in run}
        return group.job_id, np.load(result / "mean.npy"), sent

    async def standardise(self, sites: list[str] | None = None) -> Round:
        """Round 0: the pooled feature mean and spread, from securely summed x and x^2."""
        group_id, moments, sent = await self._round(0, "stats", sites or list(SITES))
        width = len(moments) // 2
        self.mean = moments[:width]
        self.std = np.sqrt(np.maximum(moments[width:] - self.mean**2, 1e-12))
        done = Round(0, group_id, None, sent, self.last_privacy, self.last_epsilon)
        self.rounds.append(done)
        self.say(f"round 0  feature scaling from secure sums  {self.seconds:4.1f} s  sent {_bytes(sent)}")
        return done

    async def train(self, sites: list[str] | None = None) -> Round:
        number = len([r for r in self.rounds if r.accuracy is not None]) + 1
        group_id, self.model, sent = await self._round(number, "train", sites or list(SITES))
        score = accuracy(self.model, self.test_x, self.test_y, self.mean, self.std)
        done = Round(number, group_id, score, sent, self.last_privacy, self.last_epsilon)
        self.rounds.append(done)
        privacy = ""
        if self.dp is not None:  # each run's loss as its node recorded it, and the total so far per site
            spent = len([r for r in self.rounds if r.epsilon])
            privacy = f"  epsilon {max(done.epsilon.values()):.2f} per site, {self.dp.epsilon(spent):.2f} in all"
        self.say(f"round {number}  accuracy {score:6.2%}  {self.seconds:4.1f} s  sent {_bytes(sent)}{privacy}")
        return done

    def pooled_accuracy(self) -> float:
        w, mean, std = pooled_model(self.shares)
        return accuracy(w, self.test_x, self.test_y, mean, std)


def _bytes(sent: dict[str, float]) -> str:
    return ", ".join(f"{site} {int(value)} B" for site, value in sent.items())


async def demo(rounds: int, drop: bool, directory: Path, dp: DpTerms | None = None) -> int:
    from node.cluster import cluster_down, cluster_up, stop_process
    from sdk.errors import JobFailedError

    started = time.monotonic()
    nodes = cluster_up(len(SITES), directory / "cluster", list(REGIONS), 90.0)
    print(f"3 nodes up in {time.monotonic() - started:.1f} s")
    try:
        federation = Federation({s: n.api_url for s, n in zip(SITES, nodes, strict=True)}, directory / "work", dp=dp)
        await federation.setup()
        for site, node in zip(SITES, nodes, strict=True):
            print(f"{site}: {federation.dataset_bytes[site]} B of records on {node.peer_id[-8:]} ({node.region})")
        await federation.standardise()
        for _ in range(rounds):
            await federation.train()
        pooled = federation.pooled_accuracy()
        final = federation.rounds[-1].accuracy or 0.0
        print(f"pooled in one place: {pooled:6.2%}; federated after {rounds} rounds: {final:6.2%} "
              f"({(pooled - final) * 100:+.1f} points)")  # fmt: skip
        totals = {s: sum(r.sent.get(s, 0) for r in federation.rounds) for s in SITES}
        print("sent by each site in all:", _bytes(totals), "(block bytes; records never leave)")
        if drop:
            print(f"stopping {SITES[-1]}'s node: its round must fail, the next run without it")
            stop_process(nodes[-1].pid)
            started = time.monotonic()
            try:
                await federation.train()
            except JobFailedError as exc:
                print(f"  failed cleanly after {time.monotonic() - started:.1f} s: {exc}")
            await federation.train(list(SITES[:-1]))
        return 0
    finally:
        cluster_down(directory / "cluster")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--drop", action="store_true", help="stop one site's node after the rounds")
    parser.add_argument("--dp", type=float, default=None, metavar="Z", help="DP noise multiplier of the updates")
    parser.add_argument("--clip", type=float, default=0.5, help="L2 bound of one site's update (with --dp)")
    options = parser.parse_args()
    dp = DpTerms(options.clip, options.dp) if options.dp is not None else None
    with tempfile.TemporaryDirectory(prefix="mycel-federated-") as scratch:
        return asyncio.run(demo(options.rounds, options.drop, Path(scratch), dp))


if __name__ == "__main__":
    sys.exit(main())
