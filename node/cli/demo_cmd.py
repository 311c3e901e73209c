"""``mycel demo``: the README's first command, the whole product in about a minute.

Three real nodes in three regions and a dev chain; a client funds its escrow; telemetry sits
on one edge node and a document set on another; the example agents are deployed and run,
paid; the scheduler places each next to its data; every result is fetched and re-hashed,
every receipt checked, every payment read back from the chain. Then it all shuts down
(``--keep`` leaves the cluster up to explore).
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"
REGIONS = ["eu-edge", "us-edge", "ap-core"]
PRICE = 10**9  # wei per CPU-second
PAY = 10**15  # the most the client authorises per job


@dataclass
class DemoJob:
    label: str
    agent_dir: str
    inputs: dict[str, str]
    region: str | None = None
    job_id: str = ""
    state: str = "queued"
    started: float = 0.0
    seconds: float = 0.0
    node: str = ""
    why: str = ""
    moved: int | None = 0  # input bytes the executor fetched to run it, as it measured them (None: not said)
    result: str = ""
    verified: str = ""
    paid: str = ""
    error: str = ""
    events: list[str] = field(default_factory=list)


def _telemetry(directory: Path) -> Path:
    """10,000 rows with 10 injected faults, from the example's own generator."""
    spec = importlib.util.spec_from_file_location(
        "generate_telemetry", EXAMPLES / "sensor-anomaly" / "generate_telemetry.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_csv(directory)
    return directory


def _documents(directory: Path) -> Path:
    """The example's sample documents plus a maintenance log of this site's own (so the set is
    this site's data, not bytes that also ship inside the doc-search agent's bundle)."""
    shutil.copytree(EXAMPLES / "doc-search" / "sample" / "docs", directory)
    (directory / "site-log.md").write_text(
        "# Site maintenance log\n\n"
        "Pump 3 vibrated hard on Tuesday; the bearing was replaced and the shaking stopped.\n\n"
        "Array B lost a fifth of its output after the dust storm until it was washed.\n"
    )
    return directory


async def _run_one(client: Any, job: DemoJob, agents: dict[str, Any], workdir: Path) -> None:
    from sdk.errors import SdkError

    job.started = time.perf_counter()
    try:
        submitted = await client.run(agents[job.agent_dir], job.inputs, region=job.region, pay=PAY, wait=False)
        job.job_id = submitted.job_id
        async for event in submitted.events():
            job.state = event["state"]
            job.events.append(event["reason"])
        job.seconds = time.perf_counter() - job.started
        await submitted.wait(60)
        chosen: dict[str, Any] = next((c for c in await submitted.explain() if c["verdict"] == "chosen"), {})
        job.node, job.why = submitted.node or "", chosen.get("reason", "")
        job.moved = submitted.input_bytes_fetched.get(job.node)  # measured there, not the placement's prediction
        await submitted.result(workdir / "results" / job.label)  # re-hashed to its CID, receipt checked
        job.result, job.verified = str(submitted.result_cid), "CID+receipt"
        await submitted.pay()  # only now, result and receipt checked, does the client sign a payment
        job.state = "settling"
        checks = await _settlement(submitted)
        job.paid = f"{sum(c.amount for c in checks) / 1e9:.3f} gwei"
        job.verified += "+chain"
        job.state = "verified"
    except (SdkError, OSError) as exc:
        job.state, job.error = "failed", str(exc)


async def _settlement(job: Any, timeout: float = 30) -> Any:
    """The node claims in batches; wait for its batch, then check the chain's record."""
    from sdk.errors import VerificationError

    deadline = time.monotonic() + timeout
    while True:
        try:
            return await job.verify_settlement()
        except VerificationError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def _blocks(jobs: list[DemoJob], names: dict[str, str]) -> Any:
    """One block per job, key/value lines that wrap: readable at 80 columns and in a pipe
    (a single wide table needed ~160 and lost its last columns on narrower screens)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = [Text("mycelnet demo: agents run next to their data, every result verified and paid", "bold")]
    for job in jobs:
        parts.append(Text(f"\n{job.label} ({job.agent_dir}): {job.state}", "bold"))
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True, style="dim")
        grid.add_column(overflow="fold")
        where = names.get(job.node, job.node[:12]) or "-"
        took = f"{job.seconds:.1f} s" if job.seconds else job.state
        moved = f"{job.moved:,} input bytes moved" if job.moved is not None else "input bytes moved not said"
        grid.add_row("  ran on", f"{where}, {took}, {moved}")
        grid.add_row("  why", (job.why.split("; ")[0] if job.why else job.error) or "-")
        grid.add_row("  result", job.result or "-")
        grid.add_row("  verified", job.verified or "-")
        grid.add_row("  paid", job.paid or "-")
        parts.append(grid)
    return Group(*parts)


async def _demo(workdir: Path, keep: bool, console: Any) -> bool:
    from rich.live import Live

    from contracts.devchain import fund
    from node.cluster import cluster_up, read_cluster_chain
    from sdk import Client, Wallet

    started = time.perf_counter()
    cluster_dir = workdir / "cluster"
    with console.status("starting 3 nodes and a dev chain (anvil) with the ledger…"):
        nodes = await asyncio.to_thread(
            cluster_up, 3, cluster_dir, REGIONS, 60.0, chain=True, price=PRICE, batch_size=3, batch_interval=1.0
        )
    chain = read_cluster_chain(cluster_dir)
    assert chain is not None
    names = {node.peer_id: f"node{node.index} ({node.region})" for node in nodes}
    for node in nodes:
        console.print(f"  node{node.index}  {node.region:8} {node.api_url}  {node.peer_id}")
    console.print(f"  chain  {chain.rpc_url}  ledger {chain.contract}")

    wallet = Wallet.open(chain.rpc_url, chain.contract, workdir / "client.key")
    fund(chain.rpc_url, wallet.address)
    await asyncio.to_thread(wallet.deposit, 5 * 10**16)
    console.print(f"client {wallet.address} deposited 0.05 ETH into escrow (key stays on this machine)")

    edge_eu, edge_us, core = (Client(node.api_url, wallet=wallet) for node in nodes)
    async with edge_eu, edge_us, core:
        telemetry = await edge_eu.put(_telemetry(workdir / "telemetry"))
        docs = await edge_us.put(_documents(workdir / "documents"))
        queries = await edge_us.put(EXAMPLES / "doc-search" / "sample" / "queries")
        console.print(f"telemetry {telemetry} on node0 (eu-edge); documents {docs} on node1 (us-edge)")
        agents = {
            name: await core.deploy(EXAMPLES / name) for name in ("sensor-anomaly", "doc-search", "wasm-wordcount")
        }
        console.print("agents deployed through node2 (ap-core): " + ", ".join(f"{k} {v}" for k, v in agents.items()))
        jobs = [
            DemoJob("anomalies", "sensor-anomaly", {"telemetry": str(telemetry)}, region="eu-edge"),
            DemoJob("search", "doc-search", {"docs": str(docs), "queries": str(queries)}),
            DemoJob("wordcount", "wasm-wordcount", {"text": str(docs)}),
        ]
        with Live(_blocks(jobs, names), console=console, refresh_per_second=4) as live:
            runs = asyncio.gather(*(_run_one(core, job, agents, workdir) for job in jobs))
            while not runs.done():
                live.update(_blocks(jobs, names))
                await asyncio.sleep(0.25)
            await runs
            live.update(_blocks(jobs, names))
    console.print()
    ok = all(job.state == "verified" for job in jobs)
    for job in jobs:
        if job.error:
            console.print(f"[red]{job.label}: {job.error}[/red]")
    console.print(f"{'all results verified by CID, receipt and chain' if ok else 'SOME JOBS FAILED'}; "
                  f"{time.perf_counter() - started:.0f} s in all. Results kept in {workdir / 'results'}")  # fmt: skip
    if keep:
        console.print(f"cluster kept: {cluster_dir / 'cluster.json'}. Try:\n"
                      f"  mycel ledger claims --api {nodes[0].api_url}\n"
                      f"  mycel job explain {jobs[0].job_id} --api {nodes[2].api_url}\n"
                      f"  mycel ledger verify {jobs[0].job_id} --api {nodes[2].api_url} --cluster {cluster_dir}\n"
                      f"stop it with: mycel cluster down --dir {cluster_dir}")  # fmt: skip
    return ok


@click.group("demo", invoke_without_command=True)
@click.option("--keep", is_flag=True, help="Leave the cluster and chain running to explore (prints how to stop).")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Work directory (default: a fresh temporary one).")  # fmt: skip
@click.pass_context
def demo_cmd(ctx: click.Context, keep: bool, directory: Path | None) -> None:
    """Run the networked demo: 3 nodes, a dev chain, paid agents placed by their data.

    `mycel demo live`: living agents on a stream instead (see its --help).

    Example: mycel demo --keep
    """
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console

    from node.cluster import cluster_down

    console = Console()  # in a pipe rich uses $COLUMNS or 80: the blocks fit either
    workdir = directory or Path(tempfile.mkdtemp(prefix="mycel-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ok = interrupted = False
    try:
        ok = asyncio.run(_demo(workdir, keep, console))
    except KeyboardInterrupt:
        interrupted, keep = True, False  # an interrupted demo leaves nothing running
        click.echo("interrupted: stopping the demo's nodes and chain", err=True)
    finally:
        if not keep or not ok:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
            cluster_down(workdir / "cluster")
            # the nodes' data goes; the results (and the inputs they came from) stay where we said
            shutil.rmtree(workdir / "cluster", ignore_errors=True)
    if interrupted:
        sys.exit(130)
    if not ok:
        raise click.ClickException("the demo did not verify every job (see above)")


def _live_example() -> Any:
    """examples/live-anomaly/run.py (its directory name is not a module name)."""
    spec = importlib.util.spec_from_file_location("live_anomaly_run", EXAMPLES / "live-anomaly" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


async def _live(workdir: Path, readings: int, rate: float, console: Any) -> bool:
    from node.cluster import cluster_up

    started = time.perf_counter()
    with console.status("starting 2 nodes: an edge node and a core node…"):
        edge, far = await asyncio.to_thread(cluster_up, 2, workdir / "cluster", ["eu-edge", "ap-core"], 60.0)
    console.print(f"  edge  {edge.api_url}  {edge.peer_id}\n  core  {far.api_url}  {far.peer_id}")
    console.print(f"{readings:,} sensor readings at {rate:.0f}/s on the edge; the detector runs there on each "
                  "100 ms of readings, the alerter on the core node's replica of its alerts stream:")  # fmt: skip
    begun = time.perf_counter()

    def show(line: str) -> None:
        console.print(f"  [bold red]{time.perf_counter() - begun:6.2f} s[/bold red]  {line}  (on the core node)")

    outcome = await _live_example().run_live(edge.api_url, edge.peer_id, far.api_url, readings, rate, show)
    ok: bool = outcome.alerted == outcome.injected
    share = outcome.left_edge_bytes / outcome.raw_bytes if outcome.raw_bytes else 0.0
    console.print(f"{len(outcome.alerted)} alerts for {len(outcome.injected)} injected anomalies"
                  f"{'' if ok else ' (MISMATCH: injected ' + str(outcome.injected) + ')'}; "
                  f"raw stream {outcome.raw_bytes:,} bytes on the edge, {outcome.left_edge_bytes:,} bytes left it "
                  f"({share:.1%}); {time.perf_counter() - started:.0f} s in all")  # fmt: skip
    return ok


@demo_cmd.command("live")
@click.option("--readings", type=click.IntRange(100, 100_000), default=2000, show_default=True)
@click.option("--rate", type=click.FloatRange(1, 2000), default=200.0, show_default=True, help="Readings per second.")
@click.option("--keep", is_flag=True, help="Leave the two nodes running to explore (prints how to stop).")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Work directory (default: a fresh temporary one).")  # fmt: skip
def live_cmd(readings: int, rate: float, keep: bool, directory: Path | None) -> None:
    """Living agents: a sensor stream on an edge node, a detector triggered next to it, alerts on another node.

    Example: mycel demo live --readings 4000 --rate 400
    """
    from rich.console import Console

    from node.cluster import cluster_down

    console = Console()
    workdir = directory or Path(tempfile.mkdtemp(prefix="mycel-demo-live-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ok = interrupted = False
    try:
        ok = asyncio.run(_live(workdir, readings, rate, console))
    except KeyboardInterrupt:
        interrupted, keep = True, False
        click.echo("interrupted: stopping the demo's nodes", err=True)
    finally:
        if not keep or not ok:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            cluster_down(workdir / "cluster")
            shutil.rmtree(workdir / "cluster", ignore_errors=True)
        else:
            console.print(f"nodes kept; stop them with: mycel cluster down --dir {workdir / 'cluster'}")
    if interrupted:
        sys.exit(130)
    if not ok:
        raise click.ClickException("the live demo did not alert exactly the injected anomalies (see above)")
