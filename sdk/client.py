"""The async client: store and fetch content, deploy agents, run jobs, verify what comes back.

Every answer that names content is checked here rather than trusted: uploads against the
CID computed locally, downloads by re-hashing, agent ids by packing locally, results
against the executing node's signed receipt.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp

from agents import receipt as receipts
from agents.bundle import agent_id_of, as_cid
from agents.errors import ManifestError
from agents.requirements import bundled_packages, unmet
from contracts.accounting import amount_for, receipt_hash
from sdk.errors import (
    AgentNotFoundError,
    JobFailedError,
    MissingInputError,
    MissingPackageError,
    NodeApiError,
    NodeUnreachableError,
    PaymentRefusedError,
    SdkError,
    UsageError,
    VerificationError,
)
from sdk.keys import DEFAULT_OWNER_KEY, Keypair, PolicyTerms
from sdk.verify import SettlementCheck, verify_bytes, verify_path, verify_receipt, verify_settlement
from sdk.wallet import Delivered, Wallet
from storage.cid import CID
from storage.privacy.access import Access, job_subject
from storage.privacy.dp import DpTerms

if TYPE_CHECKING:  # signing is mycelnet[pay]'s (a Wallet holds it): the SDK imports without it
    from contracts.payment import Envelope
    from sdk.streams import Stream, StreamReader
    from sdk.triggers import Invocation, Triggers

FINAL_STATES = ("done", "failed", "cancelled")


@dataclass(frozen=True)
class StateChange:
    """One state change of a followed job (``state``, ``reason``, ``at`` as the node sent them)."""

    state: str
    reason: str


@dataclass(frozen=True)
class NodeLogs:
    """The captured output of the agent on one node, as that node returned it with its result."""

    peer: str
    text: str


class Client:
    """``async with Client("http://127.0.0.1:5080") as client: ...``

    ``wallet`` (a :class:`sdk.wallet.Wallet`) is needed only for paid jobs and settlement checks.
    """

    def __init__(self, url: str, token: str | None = None, wallet: Wallet | None = None, timeout: float = 300) -> None:
        self.url = url.rstrip("/")
        self.wallet = wallet
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self._session

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self._request(method, path, **kwargs) as response:
            body = await response.read()
            if response.content_type == "application/json":
                return json.loads(body)
            return body

    @asynccontextmanager
    async def _request(
        self, method: str, path: str, stream: bool = False, **kwargs: Any
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One request; a 4xx/5xx answer is NodeApiError, no answer or a non-HTTP one NodeUnreachableError.

        ``stream`` lifts the overall time limit (an event stream lasts as long as its job);
        connecting and the first answer are still bounded.
        """
        if stream:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=None, connect=self._timeout.total)
        try:
            async with self._http().request(method, self.url + path, **kwargs) as response:
                if response.status >= 400:
                    raise _api_error(response.status, await response.read())
                yield response
        except aiohttp.ClientConnectorError as exc:  # nothing listens there (refused, unknown host)
            why = exc.os_error.strerror or str(exc.os_error)
            raise NodeUnreachableError(
                f"no mycelnet node answers at {self.url} ({why}): start one with 'mycel node start', "
                "or point --api (MYCEL_API_URL) at a running node's API"
            ) from None
        except aiohttp.ClientConnectionError as exc:
            raise NodeUnreachableError(f"no mycelnet node answers at {self.url}: {exc}") from None
        except aiohttp.ClientPayloadError as exc:
            raise NodeUnreachableError(f"{self.url} cut its answer to {method} {path} short: {exc}") from None
        except aiohttp.ClientResponseError:
            raise NodeUnreachableError(
                f"{self.url} does not answer in HTTP; is it the node's API address (not its libp2p port)?"
            ) from None
        except TimeoutError:
            raise NodeUnreachableError(f"{self.url} did not answer {method} {path} in time") from None

    # -- streams -----------------------------------------------------------------------
    def stream(self, name: str, key: Any, regions: Sequence[str] | None = None) -> Stream:
        """The stream ``name`` written with ``key`` (a nacl SigningKey or its 32-byte seed); this client signs.

        ``regions=[...]``: its entries may go only to nodes announcing one of them (self-declared
        labels): this client signs that policy with ``key`` and sets it before the first append."""
        from sdk.streams import Stream

        return Stream(self, name, key, regions=regions)

    def stream_reader(self, stream_id: str) -> StreamReader:
        """Read or tail any stream by its id; every entry is verified."""
        from sdk.streams import StreamReader

        return StreamReader(self, stream_id)

    # -- triggers (sdk/triggers.py) ----------------------------------------------------
    @property
    def triggers(self) -> Triggers:
        """Deploy, list and remove triggers, read their verified receipts."""
        from sdk.triggers import Triggers

        return Triggers(self)

    async def deploy_trigger(self, name: str, agent: CID | str, kind: str, **options: Any) -> dict[str, Any]:
        """Run ``agent`` on new stream entries, a schedule or HTTP calls (see Triggers.deploy)."""
        return await self.triggers.deploy(name, agent, kind, **options)

    async def invoke(self, name: str, data: bytes | str = b"") -> Invocation:
        """Call the ``invoke`` trigger ``name`` now: the agent's output and its verified receipt."""
        return await self.triggers.invoke(name, data)

    # -- the node ----------------------------------------------------------------------
    async def node(self) -> dict[str, Any]:
        """This node: peer ID, version, region, addresses, sandbox layers, chain account."""
        info: dict[str, Any] = await self._call("GET", "/v1/node")
        return info

    async def environment(self) -> dict[str, Any]:
        """The node's agent environment: python interpreter and packages, wasm runtime, its hash."""
        env: dict[str, Any] = await self._call("GET", "/v1/env")
        return env

    async def peers(self) -> list[dict[str, Any]]:
        """Peers as their signed announcements describe them, with liveness."""
        peers: list[dict[str, Any]] = (await self._call("GET", "/v1/peers"))["peers"]
        return peers

    # -- content -----------------------------------------------------------------------
    async def put(
        self, content: bytes | str | os.PathLike[str], policy: PolicyTerms | None = None, owner: Keypair | None = None
    ) -> CID:
        """Store bytes, a file or a directory; returns its CID after checking it locally.

        With ``policy`` it is stored as a private dataset: locked on the node before the upload
        answers, then opened to what the policy allows once ``owner`` (default: the key in
        ~/.mycelnet/owner.key) has signed it here, on this machine.
        """
        if policy is None:
            return await self._put(content, {})
        owner = owner or Keypair.load_or_create(DEFAULT_OWNER_KEY)
        cid = await self._put(content, {"owner": owner.id})
        await self.apply_policy(owner.policy(cid, policy).data)
        return cid

    async def apply_policy(self, record: bytes) -> dict[str, Any]:
        """Send a signed policy or revocation (from :class:`sdk.keys.Keypair`) to this node."""
        answer: dict[str, Any] = await self._call("POST", "/v1/policies", json={"record": record.hex()})
        return answer

    async def policy(self, dataset: CID | str) -> dict[str, Any]:
        """How this node holds a private dataset: owner, state (locked, active, revoked, expired), policy CID."""
        answer: dict[str, Any] = await self._call("GET", f"/v1/policies/{dataset}")
        return answer

    async def _put(self, content: bytes | str | os.PathLike[str], params: dict[str, str]) -> CID:
        if isinstance(content, bytes):
            answer = await self._call("POST", "/v1/blobs", data=content, params=params,
                                      headers={"Content-Type": "application/octet-stream"})  # fmt: skip
            cid = CID.parse(answer["cid"])
            try:
                await asyncio.to_thread(verify_bytes, cid, content)
            except VerificationError as exc:
                raise VerificationError(
                    f"the node answered {cid}, which is not the CID of the bytes sent: {exc}"
                ) from None
            return cid
        path = Path(content)
        if not path.is_dir() and not path.is_file():
            raise UsageError(f"{path} is neither a file nor a directory")
        with tempfile.TemporaryFile() as scratch:  # streamed from disk: a dataset never sits in memory
            body: IO[bytes]
            if path.is_dir():
                await asyncio.to_thread(_tar, path, scratch)
                scratch.seek(0)
                body, kind = scratch, "application/x-tar"
            else:
                body, kind = open(path, "rb"), "application/octet-stream"  # noqa: SIM115 - closed below
            try:
                answer = await self._call("POST", "/v1/blobs", params={"name": path.name, **params}, data=body,
                                          headers={"Content-Type": kind})  # fmt: skip
            finally:
                body.close()
        cid = CID.parse(answer["cid"])
        try:
            await asyncio.to_thread(verify_path, cid, path)
        except VerificationError as exc:
            raise VerificationError(f"the node answered {cid}, which is not the CID of {path}: {exc}") from None
        return cid

    async def get(self, cid: CID | str, dest: str | os.PathLike[str]) -> Path:
        """Download a file or directory to ``dest``, which must not exist yet (or be an empty directory).

        The download goes to a fresh scratch directory beside ``dest`` and is re-hashed there;
        only content that hashes to ``cid`` is moved into place, so ``dest`` never holds
        unverified bytes and a user's existing files are never mixed into what is checked.
        UsageError if ``dest`` holds something; VerificationError if the content differs.
        """
        root = CID.parse(str(cid))
        target = Path(dest)
        _check_destination(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
        try:
            staged = staging / "content"
            async with self._request("GET", f"/v1/blobs/{root}", stream=True) as response:
                is_directory = response.content_type == "application/x-tar"
                # streamed to disk (a directory's tar to a scratch file): a large result never sits in memory
                sink = tempfile.TemporaryFile(dir=staging) if is_directory else open(staged, "wb")  # noqa: SIM115
                with sink as out:
                    async for chunk in response.content.iter_chunked(1 << 20):
                        out.write(chunk)
                    if is_directory:
                        out.seek(0)
                        await asyncio.to_thread(_untar, out, staged)
            try:
                await asyncio.to_thread(verify_path, root, staged)
            except VerificationError as exc:
                raise VerificationError(f"what the node sent for {root} does not hash to it ({exc}); "
                                        f"nothing was written to {target}") from None  # fmt: skip
            _check_destination(target)
            if target.is_dir():
                target.rmdir()
            os.replace(staged, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    async def cat(self, cid: CID | str) -> bytes:
        """A file's bytes, verified against ``cid`` (UsageError for a directory: use :meth:`get`)."""
        root = CID.parse(str(cid))
        async with self._request("GET", f"/v1/blobs/{root}") as response:
            if response.content_type == "application/x-tar":
                raise UsageError(f"{root} is a directory; download it with get(cid, dest) (mycel get)")
            body = await response.read()
        try:
            await asyncio.to_thread(verify_bytes, root, body)
        except VerificationError as exc:
            raise VerificationError(f"what the node sent for {root} does not hash to it: {exc}") from None
        return body

    async def fetch_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """GET a JSON endpoint under the node's URL as it answers it, for endpoints without a method
        here and for printing a node's answer as it came (``mycel ... --json``)."""
        return await self._call("GET", path, params=dict(params or {}))

    async def agents(self) -> list[dict[str, Any]]:
        """The agents the node holds: id, name, version, runtime, description."""
        agents: list[dict[str, Any]] = (await self._call("GET", "/v1/agents"))["agents"]
        return agents

    async def agent(self, agent: CID | str) -> dict[str, Any]:
        """An agent the node holds, by id, ``name@version`` or ``name`` (its newest version):
        id, name, version, runtime, description, requires. AgentNotFoundError if it holds none."""
        try:
            info: dict[str, Any] = await self._call("GET", "/v1/agents/" + quote(str(agent), safe="@"))
        except NodeApiError as exc:
            if exc.error == "no_agent":
                raise AgentNotFoundError(exc.detail) from None
            if exc.error == "bad_agent_ref":
                raise UsageError(exc.detail) from None
            raise
        return info

    async def resolve_agent(self, agent: CID | str) -> CID:
        """The agent id ``agent`` names: a CID as it is, a name looked up on the node."""
        if isinstance(agent, CID):
            return agent
        cid = as_cid(agent)
        if cid is not None:
            return cid
        return CID.parse((await self.agent(agent))["agent"])

    async def check_inputs(self, inputs: Mapping[str, CID | str], providers_known: bool = True) -> dict[str, CID]:
        """Each input as a CID, and every one held by some node; else one MissingInputError naming them.

        Asked once, here, before the job is submitted: a CID nobody holds would otherwise send
        the job to every candidate in turn, each waiting for blocks no peer can give. Without
        ``providers_known`` (private inputs, which no provider record names) only the CIDs are checked.
        """
        parsed: dict[str, CID] = {}
        for name, value in inputs.items():
            cid = value if isinstance(value, CID) else as_cid(str(value))
            if cid is None:
                raise UsageError(f"input {name}={value} is not a CID (store the file first: mycel put PATH)")
            parsed[name] = cid
        if not providers_known:
            return parsed
        answers = await asyncio.gather(*(self._call("GET", f"/v1/blobs/{cid}/providers") for cid in parsed.values()))
        nobody = [f"{name}={cid}" for (name, cid), answer in zip(parsed.items(), answers, strict=True)
                  if not answer.get("providers")]  # fmt: skip
        if nobody:
            held = "no node holds" if len(nobody) == 1 else "no node holds these inputs:"
            raise MissingInputError(
                f"{held} {', '.join(nobody)} (store it first: mycel put PATH --api URL; a private dataset "
                "has no provider records: run with the client key its policy or grant names)"
            )
        return parsed

    async def check_requires(self, agent: CID) -> None:
        """MissingPackageError, before anything is submitted, when the agent's manifest requires
        packages that this node's environment lacks and every peer it knows runs that same
        environment (the same hash). Peers with other environments are left to placement,
        which refuses those that lack the packages and says so in the job's explanation."""
        try:
            info = await self.agent(agent)
        except AgentNotFoundError:
            return  # not held by this node yet: it fetches the bundle and placement checks
        except NodeApiError as exc:
            if exc.status == 404:  # a node older than GET /v1/agents/{ref}: placement checks
                return
            raise
        requires = info.get("requires")
        if not isinstance(requires, list) or not requires:
            return
        env, peers = await self.environment(), await self.peers()
        wheels = info.get("wheels")
        try:  # the bundle's own wheels meet requirements too (and shadow the node's copies)
            bundled = bundled_packages(tuple(wheels)) if isinstance(wheels, list) else {}
        except ManifestError:
            bundled = {}  # a node's odd answer: placement and the executor check again
        missing = unmet(tuple(str(r) for r in requires), {**env["python"]["packages"], **bundled})
        others = {p.get("env", "") for p in peers if p.get("alive")}
        if missing and others <= {env["hash"]}:
            raise MissingPackageError(
                f"agent {info['name']} requires {', '.join(missing)}, which no node known to {self.url} offers "
                f"(mycel agent env --api {self.url} lists what it has)"
            )

    async def claims(self, state: str | None = None) -> dict[str, Any]:
        """The node's chain account and the claims it made for paid jobs (``state`` filters them)."""
        answer: dict[str, Any] = await self._call("GET", "/v1/ledger/claims", params={"state": state} if state else {})
        return answer

    # -- agents and jobs ---------------------------------------------------------------
    async def deploy(self, agent_dir: str | os.PathLike[str]) -> CID:
        """Upload and pack an agent directory; returns its id (checked against packing it here)."""
        directory = Path(agent_dir)
        expected = await asyncio.to_thread(agent_id_of, directory)
        bundle = io.BytesIO()  # agents are small: packed in memory
        await asyncio.to_thread(_tar, directory, bundle)
        answer = await self._call("POST", "/v1/agents", data=bundle.getvalue(),
                                  headers={"Content-Type": "application/x-tar"})  # fmt: skip
        if CID.parse(answer["agent"]) != expected:
            raise VerificationError(f"the node packed {answer['agent']}, but {directory} packs to {expected}")
        return expected

    async def run(
        self,
        agent: CID | str,
        inputs: Mapping[str, CID | str] | None = None,
        args: list[str] | tuple[str, ...] = (),
        redundancy: int = 1,
        region: str | list[str] | None = None,
        max_price: int | None = None,
        pay: int | None = None,
        wait: bool = True,
        timeout: float = 300,
        min_stake: int = 0,
        spot_check: float = 0.0,
        trusted: Sequence[str] = (),
        client_key: Keypair | None = None,
        grants: Mapping[str, Sequence[bytes]] | None = None,
        queue_timeout: float | None = None,
        publisher_signatures: Sequence[bytes] = (),
    ) -> Job:
        """Submit a job; with ``wait`` return once it is done (JobFailedError if it failed).

        ``agent`` is its id or its name (``name@version``, or ``name`` for the newest the node
        holds). Before submitting, every input must be held by some node (MissingInputError).

        ``pay`` (wei) makes it a paid job: the wallet signs a commitment of at most that much per
        node (and at most ``max_price`` per CPU-second, when given), which nodes can rely on but
        not claim; ``min_stake`` (wei) limits it to executors with at least that stake on the
        ledger. With ``wait``, once the job is done its result and every receipt are verified
        and each executor is paid what its receipt's usage earns (:meth:`Job.pay`); without it,
        call ``job.pay()`` after ``job.wait()``.

        ``redundancy`` k > 1 runs the job on k nodes of distinct operators and accepts the result
        only if they agree (by result CID); ``spot_check`` p re-runs it, with probability p, on
        the first of the ``trusted`` peer IDs that can run it. ``job.corroboration`` says how the
        result was corroborated (``summary``: e.g. "2 distinct operators agreed of 2 run" or
        "single executor, unverified").
        Over private data, ``client_key`` signs the job's access proof (for exactly this agent,
        inputs and args, sent through this node), and ``grants`` maps a dataset CID to the
        grant chain (:meth:`sdk.keys.Keypair.grant`) the client holds for it, if the dataset's
        policy does not list the client itself; ``publisher_signatures`` (:meth:`sdk.keys.Keypair.sign_agent`)
        go with the proof, for policies that approve agents by publisher key.

        When every node that could run it is full, the job waits in state ``queued`` (its
        transitions say why) and fails only after ``queue_timeout`` seconds (None: the node's
        ``jobs.queue_timeout_seconds``). Keep ``timeout`` above it when waiting.
        """
        job_id = os.urandom(16).hex()  # chosen here: the commitment is signed for it
        agent_id = await self.resolve_agent(agent)
        await self.check_requires(agent_id)
        # private inputs have no provider records by design (only named holders know of them),
        # so "nobody holds it" cannot be told from "it is private": the holders' gates decide
        checked = await self.check_inputs(inputs or {}, providers_known=client_key is None)
        body: dict[str, Any] = {
            "agent": str(agent_id),
            "inputs": {name: str(cid) for name, cid in checked.items()},
            "args": list(args),
            "redundancy": redundancy,
            "job_id": job_id,
        }
        if region:
            body["regions"] = [region] if isinstance(region, str) else list(region)
        if max_price is not None:
            body["max_price"] = max_price
        if spot_check or trusted:
            body["spot_check"], body["trusted"] = spot_check, list(trusted)
        if client_key is not None:
            body["access"] = await self._access(client_key, body, grants or {}, publisher_signatures)
        if queue_timeout is not None:
            body["queue_timeout"] = queue_timeout
        commitment = None
        if pay is not None:
            commitment = await self._commitment(job_id, pay, max_price, min_stake)
            body["payment"] = commitment.encode().hex()
        await self._call("POST", "/v1/jobs", json=body)
        job = Job(self, job_id, commitment)
        if wait:
            await job.wait(timeout)
            if commitment is not None:
                await job.pay()
        return job

    async def _access(
        self,
        key: Keypair,
        body: dict[str, Any],
        grants: Mapping[str, Sequence[bytes]],
        publisher_signatures: Sequence[bytes] = (),
    ) -> str:
        requester = (await self.node())["peer_id"]
        inputs = {name: CID.parse(cid) for name, cid in body["inputs"].items()}
        subject = job_subject(CID.parse(body["agent"]), inputs, body["args"])
        chains = {str(dataset): tuple(chain) for dataset, chain in grants.items()}
        access = Access(key.id, subject, requester, int(time.time()) + 3600, chains, tuple(publisher_signatures))
        return access.sign(key.sign).hex()

    async def run_group(
        self,
        agent: CID | str,
        datasets: Mapping[str, CID | str],
        aggregator: CID | str,
        *,
        shared: Mapping[str, CID | str] | None = None,
        input: str = "data",
        args: Sequence[str] = (),
        aggregator_args: Sequence[str] = (),
        region: str | list[str] | None = None,
        wait: bool = True,
        timeout: float = 300,
        client_key: Keypair | None = None,
        grants: Mapping[str, Sequence[bytes]] | None = None,
        publisher_signatures: Sequence[bytes] = (),
        dp: DpTerms | None = None,
    ) -> GroupJob:
        """A federated job: ``agent`` runs once per dataset, each run at that dataset's holder
        (the dataset at ``/in/<input>``, plus the ``shared`` inputs), in parallel; then
        ``aggregator`` runs on their results (``/in/<dataset name>``). One job id for the group;
        with ``wait``, returns once the group is done (JobFailedError naming each failed run).

        Over private datasets, ``client_key`` signs one access proof per run (for exactly that
        run's agent, inputs and args, sent through this node); ``grants`` maps a dataset CID to
        the client's grant chain where a policy does not list the client itself. ``dp`` makes each
        run clip its update and add Gaussian noise; the node records what each run spends."""
        body: dict[str, Any] = {
            "agent": str(agent),
            "datasets": {name: str(cid) for name, cid in datasets.items()},
            "aggregator": str(aggregator),
            "input": input,
            "shared": {name: str(cid) for name, cid in (shared or {}).items()},
            "args": list(args),
            "aggregator_args": list(aggregator_args),
        }
        if region:
            body["regions"] = [region] if isinstance(region, str) else list(region)
        run_args = list(args)
        if dp is not None:
            body["dp"] = dp.record()
            run_args += dp.args()  # as the node gives them to each run: the proof signs them too
        if client_key is not None:
            body["access"] = {
                name: await self._access(client_key, {"agent": body["agent"], "args": run_args,
                                                      "inputs": {input: cid, **body["shared"]}}, grants or {},
                                              publisher_signatures)
                for name, cid in body["datasets"].items()
            }  # fmt: skip
        answer = await self._call("POST", "/v1/groups", json=body)
        group = GroupJob(self, str(answer["job_id"]))
        if wait:
            await group.wait(timeout)
        return group

    async def jobs(
        self, state: str | None = None, agent: CID | str | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Jobs this node requested, newest first, as summaries (job_id, state, agent, created,
        updated, reason), and the cursor of the next page (None on the last one).

        Pass the cursor back to page on: ``page, cursor = await client.jobs(cursor=cursor)``.
        """
        params: dict[str, str] = {"limit": str(limit)}
        agent = await self.resolve_agent(agent) if agent is not None else None
        for name, value in (("state", state), ("agent", agent), ("cursor", cursor)):
            if value is not None:
                params[name] = str(value)
        answer = await self._call("GET", "/v1/jobs", params=params)
        jobs: list[dict[str, Any]] = answer["jobs"]
        next_cursor: str | None = answer["next_cursor"]
        return jobs, next_cursor

    async def job(self, job_id: str) -> Job:
        job = Job(self, job_id)
        await job.refresh()
        return job

    async def _commitment(self, job_id: str, max_amount: int, max_price: int | None, min_stake: int) -> Envelope:
        if self.wallet is None:
            raise SdkError("a paid job needs a wallet: Client(url, wallet=Wallet.open(rpc_url, contract, key_file))")
        wallet = self.wallet
        ceiling = max_price if max_price is not None else max_amount  # no ceiling beyond the total
        return await asyncio.to_thread(wallet.commit, job_id, max_amount, ceiling, None, min_stake)


class Job:
    """A submitted job. ``info`` is the node's last answer (state, transitions, results)."""

    def __init__(self, client: Client, job_id: str, commitment: Envelope | None = None) -> None:
        self.client = client
        self.job_id = job_id
        self.commitment = commitment  # the paid job's terms, as this client signed them
        self.info: dict[str, Any] = {}
        self.payments: dict[str, dict[str, Any]] = {}  # executor peer ID -> its answer to our payment

    @property
    def status(self) -> str:
        return str(self.info.get("state", "queued"))

    @property
    def result_cid(self) -> CID | None:
        result = self.info.get("result")
        return CID.parse(result) if result else None

    @property
    def corroboration(self) -> dict[str, Any]:
        """How the result was corroborated: ``summary``, ``agreed`` (the nodes that returned it:
        the only ones paid), ``disagreed``, ``spot_check``, ``evidence`` (ids in GET /v1/evidence)."""
        found: dict[str, Any] = self.info.get("corroboration") or {}
        return found

    @property
    def input_bytes_fetched(self) -> dict[str, int]:
        """Executing node's peer ID -> the input bytes it fetched from the network to run the
        job, as it measured them (0: it held every input). A measurement, unlike the placement
        explanation's ``moved_bytes``, which is predicted from what the nodes announced."""
        found: dict[str, int] = self.info.get("input_bytes_fetched") or {}
        return found

    @property
    def node(self) -> str | None:
        """The peer ID that produced the result (the first, for redundant jobs)."""
        results = self.info.get("results") or {}
        return sorted(results)[0] if results else None

    async def refresh(self) -> dict[str, Any]:
        self.info = await self.client._call("GET", f"/v1/jobs/{self.job_id}")
        return self.info

    async def wait(self, timeout: float = 300) -> Job:
        """Follow the job's event stream until it ends; JobFailedError if it failed or was cancelled.

        Waiting on events rather than polling: the job's end is seen the moment the node
        records it. Should the stream close early, the job is read once and followed again.
        """
        try:
            async with asyncio.timeout(timeout):
                while True:
                    async with contextlib.aclosing(self.events()) as events:
                        async for event in events:
                            if event.get("state") in FINAL_STATES:
                                break
                    if (await self.refresh())["state"] in FINAL_STATES:
                        break
        except TimeoutError:
            raise SdkError(f"job {self.job_id} still {self.status} after {timeout:.0f} s") from None
        if self.status != "done":
            reason = self.info["transitions"][-1]["reason"] if self.info.get("transitions") else "unknown"
            raise JobFailedError(f"job {self.job_id} {self.status}: {reason}")
        return self

    async def events(self) -> AsyncGenerator[dict[str, Any], None]:
        """State changes as they happen (server-sent events), ending with the final state."""
        async with self.client._request("GET", f"/v1/jobs/{self.job_id}/events", stream=True) as response:
            data: list[str] = []
            kind = "message"
            try:
                async for raw in response.content:
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    if line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].removeprefix(" "))
                    elif not line and data:
                        event: dict[str, Any] = json.loads("\n".join(data))
                        data, current, kind = [], kind, "message"
                        if current == "dropped":  # the node dropped this slow subscriber: wait() reads the job
                            return
                        if isinstance(event, dict) and "state" in event:
                            yield event
            except aiohttp.ClientPayloadError:
                return  # the stream was cut: what was read stands; wait() reads the job again

    async def cancel(self) -> Job:
        """Ask the node to cancel the job (``DELETE /v1/jobs/{id}``); a job already ended stays as it was."""
        answer: dict[str, Any] = await self.client._call("DELETE", f"/v1/jobs/{self.job_id}")
        self.info = {**self.info, **answer}
        return self

    async def logs(self) -> dict[str, str]:
        """The agent's captured output, per node."""
        logs: dict[str, str] = (await self.client._call("GET", f"/v1/jobs/{self.job_id}/logs"))["logs"]
        return logs

    async def follow_logs(self) -> AsyncGenerator[StateChange | NodeLogs, None]:
        """The job as it goes, until it ends.

        Yields a :class:`StateChange` per state change and a :class:`NodeLogs` once per node
        whose output has arrived, in the order the node records them, until the job ends. An
        executor sends its agent's output with its result, so a node's logs appear when its
        attempt ends (a failed attempt's before the failover's); each state change prompts
        one read of the logs, nothing is polled. A stream cut early is followed again.
        """
        shown: set[str] = set()
        while True:
            async with contextlib.aclosing(self.events()) as events:
                async for event in events:
                    yield StateChange(str(event["state"]), str(event.get("reason", "")))
                    for peer, text in (await self.logs()).items():
                        if peer not in shown:
                            shown.add(peer)
                            yield NodeLogs(peer, text)
                    if event.get("state") in FINAL_STATES:
                        break
            if (await self.refresh())["state"] in FINAL_STATES:
                break
        for peer, text in (await self.logs()).items():
            if peer not in shown:
                yield NodeLogs(peer, text)

    async def explain(self) -> list[dict[str, Any]]:
        """Every candidate node, chosen, standby or refused, with the reason."""
        answer = await self.client._call("GET", f"/v1/jobs/{self.job_id}/placement")
        candidates: list[dict[str, Any]] = answer["candidates"]
        return candidates

    async def receipt_bytes(self, node: str | None = None) -> bytes:
        """The signed receipt of ``node`` (default: the first node that returned the result), unchecked."""
        params = {"node": node} if node else {}
        body: bytes = await self.client._call("GET", f"/v1/jobs/{self.job_id}/receipt", params=params)
        return body

    async def all_receipt_bytes(self) -> dict[str, bytes]:
        """Every node's signed receipt (a redundant job has one per node that ran it), unchecked."""
        await self.refresh()
        return {node: await self.receipt_bytes(node) for node in sorted(self.info.get("receipts") or {})}

    async def receipt(self) -> receipts.Receipt:
        """The executing node's signed receipt, verified: its signature, this job, this result."""
        if not self.info:
            await self.refresh()
        return verify_receipt(await self.receipt_bytes(self.node), self.job_id, self.result_cid, self.node)

    async def result(self, dest: str | os.PathLike[str]) -> Path:
        """Download the result to ``dest`` (a new path), verified by CID and against the receipt."""
        if not self.info:
            await self.refresh()
        if self.result_cid is None:
            raise SdkError(f"job {self.job_id} has no result ({self.status})")
        await self.receipt()
        return await self.client.get(self.result_cid, dest)

    async def pay(self) -> dict[str, dict[str, Any]]:
        """Pay every executor of this done job that returned the agreed result, for exactly what
        its receipt earns (an executor whose result disagreed is never paid).

        Each receipt is verified (signature, this job, the agreed result, the node), the node's
        chain address must be bound to its peer ID on the ledger, and the amount is
        ``amount_for(CPU-seconds, min(node's price, committed ceiling), committed maximum)``.
        The wallet signs each payment, bound to that receipt's hash and the result, and posts
        them to the requesting node, which forwards each executor its own. Raises
        PaymentRefusedError if an executor refused its payment.
        """
        if self.commitment is None or self.client.wallet is None:
            raise SdkError(f"job {self.job_id} was not submitted as a paid job by this client")
        from contracts.authorization import JobCommitment

        terms = self.commitment.signed.record
        assert isinstance(terms, JobCommitment)
        wallet = self.client.wallet
        if (await self.refresh())["state"] != "done" or self.result_cid is None:
            raise SdkError(f"job {self.job_id} is {self.status}: only delivered work is paid")
        node, peers = await self.client.node(), await self.client.peers()
        terms_of = {p["peer_id"]: (str(p.get("chain_address", "")), int(p.get("price", 0))) for p in peers}
        chain = node.get("chain") or {}
        terms_of[str(node["peer_id"])] = (str(chain.get("address", "")), int(chain.get("price", 0)))
        deliveries = []
        agreed = self.corroboration.get("agreed") or sorted(self.info.get("results") or {})
        for peer in sorted(agreed):  # only the nodes that returned the agreed result: never a disagreeing one
            signed = await self.client._call("GET", f"/v1/jobs/{self.job_id}/receipt", params={"node": peer})
            receipt = verify_receipt(signed, self.job_id, self.result_cid, peer)
            address, price = terms_of.get(peer, ("", 0))
            if not address or not await asyncio.to_thread(wallet.is_bound, address, peer):
                raise VerificationError(f"{peer} has no chain address the ledger binds to it: it cannot be paid")
            amount = amount_for(receipt.usage.cpu_seconds, min(price, terms.max_price), terms.max_amount)
            deliveries.append(Delivered(address, amount, receipt_hash(signed), bytes(self.result_cid)[4:]))
        payments = await asyncio.to_thread(wallet.pay_delivered, self.job_id, self.commitment, deliveries)
        body = {"payments": [p.encode().hex() for p in payments.values()]}
        answer = await self.client._call("POST", f"/v1/jobs/{self.job_id}/payment", json=body)
        self.payments = answer["nodes"]
        refused = {peer: a["reason"] for peer, a in self.payments.items() if not a["accepted"]}
        if refused:
            raise PaymentRefusedError(f"job {self.job_id}: payment refused by {refused}")
        return self.payments

    async def verify_settlement(self) -> list[SettlementCheck]:
        """The chain's record of this job's payment, checked against the receipt."""
        wallet = self.client.wallet
        if wallet is None:
            raise SdkError("checking a settlement needs the chain: Client(url, wallet=...)")
        signed = list((await self.all_receipt_bytes()).values())
        return await asyncio.to_thread(verify_settlement, self.job_id, wallet.rpc_url, wallet.contract, receipts=signed)


class GroupJob:
    """A submitted group (federated) job: ``runs`` (dataset name -> its run: job id, node,
    result, receipt), ``aggregate`` (the aggregator's run), ``result_cid`` (the group's result)."""

    POLL = 0.2  # seconds between reads of the group while waiting

    def __init__(self, client: Client, job_id: str) -> None:
        self.client = client
        self.job_id = job_id
        self.info: dict[str, Any] = {}

    @property
    def status(self) -> str:
        return str(self.info.get("state", "queued"))

    @property
    def runs(self) -> dict[str, dict[str, Any]]:
        runs: dict[str, dict[str, Any]] = self.info.get("runs") or {}
        return runs

    @property
    def aggregate(self) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.info.get("aggregate")
        return found

    @property
    def result_cid(self) -> CID | None:
        result = self.info.get("result")
        return CID.parse(result) if result else None

    async def refresh(self) -> dict[str, Any]:
        self.info = await self.client._call("GET", f"/v1/groups/{self.job_id}")
        return self.info

    async def wait(self, timeout: float = 300) -> GroupJob:
        """Until the group ends; JobFailedError with the node's reason if it failed or was cancelled."""
        try:
            async with asyncio.timeout(timeout):
                while (await self.refresh())["state"] not in FINAL_STATES:
                    await asyncio.sleep(self.POLL)
        except TimeoutError:
            raise SdkError(f"group job {self.job_id} still {self.status} after {timeout:.0f} s") from None
        if self.status != "done":
            raise JobFailedError(f"group job {self.job_id} {self.status}: {self.info.get('reason', 'unknown')}")
        return self

    async def explain(self) -> list[dict[str, Any]]:
        """Every run's placement (``dataset``, ``job_id``, ``candidates``), the aggregator's last."""
        answer = await self.client._call("GET", f"/v1/jobs/{self.job_id}/placement")
        runs: list[dict[str, Any]] = answer["runs"]
        return runs

    async def verified_receipts(self) -> dict[str, receipts.Receipt]:
        """Every run's signed receipt and the aggregator's (key ``(aggregate)``), each verified:
        signature, its job, its result, the node that ran it."""
        if not self.info:
            await self.refresh()
        found = {}
        named = [*self.runs.items(), *([("(aggregate)", self.aggregate)] if self.aggregate else [])]
        for name, run in named:
            if not run.get("result"):
                raise SdkError(f"group job {self.job_id}: run {name} has no result ({run.get('state')})")
            job = Job(self.client, str(run["job_id"]))
            found[name] = await job.receipt()
        return found

    async def result(self, dest: str | os.PathLike[str]) -> Path:
        """Download the group's result (the aggregator's), verified by CID and every receipt."""
        await self.refresh()
        if self.result_cid is None:
            raise SdkError(f"group job {self.job_id} has no result ({self.status})")
        await self.verified_receipts()
        return await self.client.get(self.result_cid, dest)


def _tar(directory: Path, out: IO[bytes]) -> None:
    """A directory as a tar stream, in sorted order, so uploads are reproducible."""
    with tarfile.open(fileobj=out, mode="w") as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(path, arcname=os.path.relpath(path, directory), recursive=False)


def _untar(archive: IO[bytes], target: Path) -> None:
    target.mkdir()
    with tarfile.open(fileobj=archive) as tar:
        tar.extractall(target, filter="data")


def _check_destination(target: Path) -> None:
    """Refuse a destination that already holds something: a download never merges into it."""
    if target.is_dir() and not target.is_symlink():
        if any(target.iterdir()):
            raise UsageError(f"{target} is a directory that is not empty; name a new path (or empty it)")
    elif target.exists() or target.is_symlink():
        raise UsageError(f"{target} already exists; name a new path (or remove it)")


def _api_error(status: int, body: bytes) -> NodeApiError:
    try:
        data = json.loads(body)
        return NodeApiError(status, str(data["error"]), str(data["detail"]))
    except (ValueError, KeyError, TypeError):
        return NodeApiError(status, "http_error", body[:200].decode("utf-8", "replace"))
