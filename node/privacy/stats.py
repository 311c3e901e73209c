"""Per-dataset counts of what the gates refused and of grant holders that ran, for the dashboard.

In memory, since the node started (``/metrics`` keeps the node-wide counts by reason): the
dashboard's private-data table shows, per dataset, how often it was refused to whom and for
what reason, and how many distinct grant holders ran jobs on it. Bounded: at most
``MAX_DATASETS`` datasets are tracked (the first seen) and ``MAX_CLIENTS`` grant holders each,
so a flood of requests for made-up CIDs cannot grow it.
"""

from __future__ import annotations

import threading
from collections import Counter

from storage.cid import CID

MAX_DATASETS = 4096
MAX_CLIENTS = 1024


class PrivacyStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # the gates run in store threads and on the loop
        self._refused: dict[str, Counter[str]] = {}
        self._grant_clients: dict[str, set[str]] = {}

    def refused(self, datasets: list[CID], reason: str) -> None:
        with self._lock:
            for dataset in datasets:
                key = str(dataset)
                if key in self._refused or len(self._refused) < MAX_DATASETS:
                    self._refused.setdefault(key, Counter())[reason] += 1

    def granted(self, dataset: CID, client: str) -> None:
        with self._lock:
            key = str(dataset)
            if key not in self._grant_clients and len(self._grant_clients) >= MAX_DATASETS:
                return
            clients = self._grant_clients.setdefault(key, set())
            if len(clients) < MAX_CLIENTS:
                clients.add(client)

    def of(self, dataset: CID) -> tuple[dict[str, int], int]:
        """(refusals by reason, distinct grant holders that ran) for ``dataset``."""
        with self._lock:
            key = str(dataset)
            return dict(self._refused.get(key, {})), len(self._grant_clients.get(key, ()))
