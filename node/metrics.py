"""The node's Prometheus metrics, kept in a registry of its own.

Each node owns a :class:`prometheus_client.CollectorRegistry` rather than the library's global
one: the tests (and ``mycel demo``) run several nodes in one process, and a shared registry
would mix their counts and refuse the second node's metrics as duplicates.

Call sites name a metric without the ``mycel_`` prefix (``inc("blocks_served_total")``); the
metric is made on first use, with its HELP text from :data:`HELP`, so a module that counts
something new needs no registration step. Counters end in ``_total`` (Prometheus's rule, and
the name the exposition shows); a gauge must not be named like a counter without that suffix
(``claims_settled`` beside ``claims_settled_total`` is one family to Prometheus, refused as a
duplicate), hence one ``claims{state=...}`` gauge. Three histograms time what an operator tunes: a job from
submission to its final state, a network fetch, and an API request (labelled by route
template, never the raw path, so a client cannot grow the label set).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

# a `_created` series beside every counter and histogram would double the exposition for nothing read
disable_created_metrics()  # type: ignore[no-untyped-call]

PREFIX = "mycel_"
CONTENT_TYPE = CONTENT_TYPE_LATEST

HELP: dict[str, str] = {
    "block_requests_refused_total": "Block requests refused (peer over its rate or concurrency bound)",
    "blocks_served_total": "Blocks sent to peers",
    "bytes_out_total": "Block bytes sent to peers",
    "blocks_stored_total": "Blocks fetched from peers, verified and stored",
    "bytes_in_total": "Block bytes fetched from peers",
    "blocks_rejected_total": "Blocks from peers that failed verification",
    "bitswap_blocks_sent_total": "Blocks sent over Bitswap (also counted in blocks_served_total)",
    "bitswap_messages_received_total": "Bitswap messages received",
    "bitswap_messages_refused_total": "Bitswap messages refused as malformed or over a bound",
    "bitswap_wants_dropped_total": "Bitswap wants dropped past a peer's wantlist bound",
    "bitswap_unwanted_blocks_total": "Bitswap blocks dropped: not asked of that peer, or not matching their CID",
    "bytes_uploaded_total": "Bytes uploaded through the API",
    "dht_provides_total": "Provider records announced to the DHT",
    "gossip_accepted_total": "Peer announcements accepted",
    "gossip_rejected_total": "Peer announcements rejected, by reason",
    "jobs_executed_total": "Jobs this node ran for requesters, by outcome",
    "claims_enqueued_total": "Settlement claims queued",
    "claims_rpc_errors_total": "Chain RPC errors while settling claims",
    "claims_settled_total": "Claims settled on the chain",
    "claims_failed_total": "Claims that failed for good",
    "claims_gas_total": "Gas spent on settlement transactions",
    "claims_transactions_total": "Settlement transactions sent",
    "private_blocks_refused_total": "Private blocks refused to a peer or an HTTP client",
    "private_refused_total": "Requests for private data refused (blocks or jobs), by reason",
    "private_results_withheld_total": "Results of private jobs withheld (over their policy's cap)",
    "peers_connected": "Peers with an open libp2p connection",
    "peers_alive": "Peers heard from within node.peer_timeout",
    "jobs_running": "Jobs running on this node",
    "jobs_in_sandbox": "Job processes inside the sandbox now",
    "store_blocks": "Blocks in the block store",
    "store_bytes": "Bytes in the block store",
    "p2p_bytes_in": "Bytes received over libp2p",
    "p2p_bytes_out": "Bytes sent over libp2p",
    "claims": "Claims this node holds, by state (pending: not yet settled; settled; failed)",
}

# seconds; a job runs from a fraction of a second to a day, a fetch and a request far less
JOB_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
FETCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    """One node's counters, gauges and histograms; safe from any thread (the library locks)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        self._counters: dict[str, Counter] = {}
        self._gauges: dict[str, Gauge] = {}
        self.job_seconds = Histogram(
            PREFIX + "job_seconds",
            "Jobs this node requested, from submission to their final state, by outcome",
            ["outcome"],
            buckets=JOB_BUCKETS,
            registry=self.registry,
        )
        self.fetch_seconds = Histogram(
            PREFIX + "fetch_seconds",
            "Fetches of a DAG from peers, by outcome (ok or error)",
            ["outcome"],
            buckets=FETCH_BUCKETS,
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            PREFIX + "http_request_seconds",
            "API requests, by route template, method and status",
            ["route", "method", "status"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )

    def _counter(self, name: str, labels: tuple[str, ...]) -> Counter:
        with self._lock:
            counter = self._counters.get(name)
            if counter is None:
                if not name.endswith("_total"):
                    raise ValueError(f"counter {name!r} must end in _total")
                help_text = HELP.get(name, name.replace("_", " "))
                counter = Counter(PREFIX + name, help_text, labels, registry=self.registry)
                self._counters[name] = counter
            return counter

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        counter = self._counter(name, tuple(sorted(labels)))
        (counter.labels(**labels) if labels else counter).inc(amount)

    def set(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            gauge = self._gauges.get(name)
            if gauge is None:
                help_text = HELP.get(name, name.replace("_", " "))
                gauge = Gauge(PREFIX + name, help_text, tuple(sorted(labels)), registry=self.registry)
                self._gauges[name] = gauge
        (gauge.labels(**labels) if labels else gauge).set(value)

    def job_finished(self, outcome: str, seconds: float) -> None:
        """A job this node requested reached its final state ``outcome`` after ``seconds``."""
        self.job_seconds.labels(outcome=outcome).observe(max(seconds, 0.0))

    @contextmanager
    def timed_fetch(self) -> Iterator[None]:
        """Time the block of a network fetch; a fetch that raises counts as an ``error``."""
        started = time.perf_counter()
        outcome = "error"
        try:
            yield
            outcome = "ok"
        finally:
            self.fetch_seconds.labels(outcome=outcome).observe(time.perf_counter() - started)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One API request; ``route`` is the route's template (or "unmatched"), an unknown
        method counts as "other", so no label takes a value a client chose freely."""
        method = method if method in METHODS else "other"
        self.request_seconds.labels(route=route, method=method, status=str(status)).observe(seconds)

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0 when it was never set), as tests and benchmarks read it."""
        found = self.registry.get_sample_value(PREFIX + name, labels)
        return 0.0 if found is None else found

    def render(self) -> bytes:
        """The text exposition format, with HELP and TYPE lines (:data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
