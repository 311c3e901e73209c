"""federated-site: one hospital's local step, run at the node that holds its records.

Inputs: ``$MYCEL_IN/data`` (this site's private share: ``x.npy``, ``y.npy``, ``site.json``
with its name, ``secret.key``: its X25519 private key) and ``$MYCEL_IN/round`` (public:
``round.json`` with the round number, a fresh session nonce, mode, the roster of participating sites' public keys,
the feature scaling and hyper-parameters; ``model.npy``, the global model).

Mode ``stats``: the site's feature sums (sum x, sum x^2, n), for a federated standardisation.
Mode ``train``: one local epoch of mini-batch logistic regression from the global model;
the update is (n * w, n), so the sum over sites gives FedAvg's sample-weighted mean.
Either way only ``$MYCEL_OUT/update.bin`` leaves: the vector masked for secure aggregation
(uniform noise on its own), and ``site.json`` (name and round). No record leaves.

Differential privacy (train mode): with ``--dp-clip=C --dp-noise=Z`` (the terms the node gives
every run of a group job with ``dp``), the local step's change to the global model is clipped
to L2 norm C and Gaussian noise of standard deviation Z * C is added, from the OS's randomness,
before the update is masked. The node, not this agent, records the privacy loss of the terms.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import secagg

inputs, out = Path(os.environ["MYCEL_IN"]), Path(os.environ["MYCEL_OUT"])
data, round_dir = inputs / "data", inputs / "round"
me = json.loads((data / "site.json").read_text())["name"]
spec = json.loads((round_dir / "round.json").read_text())
roster = {name: bytes.fromhex(key) for name, key in spec["roster"].items()}
if me not in roster:
    raise SystemExit(f"site {me} is not in this round's roster")
x, y = np.load(data / "x.npy"), np.load(data / "y.npy")
n = len(y)

if spec["mode"] == "stats":
    vector = np.concatenate([x.sum(axis=0), (x * x).sum(axis=0), [n]])
else:
    mean, std = np.asarray(spec["mean"]), np.asarray(spec["std"])
    features = np.hstack([(x - mean) / std, np.ones((n, 1))])
    w = np.load(round_dir / "model.npy")
    rng = np.random.default_rng(spec["round"] * 1000 + sorted(roster).index(me))
    order, lr, batch, l2 = rng.permutation(n), spec["lr"], spec["batch"], spec["l2"]
    for start in range(0, n, batch):
        rows = order[start : start + batch]
        predicted = 1.0 / (1.0 + np.exp(-(features[rows] @ w)))
        w = w - lr * (features[rows].T @ (predicted - y[rows]) / len(rows) + l2 * w)
    terms = dict(arg[2:].split("=", 1) for arg in sys.argv[1:] if arg.startswith("--dp-") and "=" in arg)
    if terms:
        start = np.load(round_dir / "model.npy")
        clip, noise = float(terms["dp-clip"]), float(terms["dp-noise"])
        change = w - start
        change *= min(1.0, clip / max(float(np.linalg.norm(change)), 1e-12))
        change += np.random.default_rng(int.from_bytes(os.urandom(16))).normal(0.0, noise * clip, change.shape)
        w = start + change
    vector = np.concatenate([n * w, [n]])

session = bytes.fromhex(spec["session"])  # fresh per group job: masks are never reused
masked = secagg.mask(vector, me, (data / "secret.key").read_bytes(), roster, session)
(out / "update.bin").write_bytes(masked.astype("<u8").tobytes())
(out / "site.json").write_text(json.dumps({"site": me, "round": spec["round"]}))
