"""``mycel job run|list|status|explain|logs|result|cancel``: jobs through a node's HTTP API, via the SDK."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import click

from node.cli.chain_cmds import chain_options, key_option, open_wallet, parse_amount
from node.cli.common import Interrupted, api_options, format_amount, print_json, sdk_client

FINAL_STATES = ("done", "failed", "cancelled")


@click.group("job")
def job_group() -> None:
    """Run jobs on the network and follow them."""


def _reason(info: dict[str, Any]) -> str:
    transitions = info.get("transitions") or []
    return str(transitions[-1]["reason"]) if transitions else "no reason given"


@job_group.command("run")
@click.argument("agent")
@click.option("--input", "inputs", multiple=True, metavar="NAME=CID", help="An input (repeatable).")
@click.option("--arg", "args", multiple=True, help="An argument for the agent (repeatable).")
@click.option(
    "--redundancy",
    type=click.IntRange(1, 16),
    default=1,
    show_default=True,
    help="Run on this many nodes of distinct operators; the result counts only if they agree.",
)
@click.option(
    "--spot-check",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Probability of re-running the job on a --trusted node and comparing results.",
)
@click.option(
    "--trusted",
    multiple=True,
    metavar="PEER_ID",
    help="A node you trust for spot checks (repeatable; the first that can run the job is used).",
)
@click.option("--region", "regions", multiple=True, help="Regions the data may go to (repeatable).")
@click.option("--wait/--no-wait", default=True, show_default=True)
@click.option("--pay", default=None, help="Pay up to this much (wei, or gwei/eth) per node, signed with --key "
              "once the result and receipts check out.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True)
@api_options
@chain_options
@key_option
def job_run(
    agent: str,
    inputs: tuple[str, ...],
    args: tuple[str, ...],
    redundancy: int,
    spot_check: float,
    trusted: tuple[str, ...],
    regions: tuple[str, ...],
    wait: bool,
    pay: str | None,
    as_json: bool,
    api_url: str,
    api_token: str | None,
    rpc_url: str | None,
    contract: str | None,
    cluster_dir: Path | None,
    key_file: Path,
) -> None:
    """Submit AGENT (its id, NAME@VERSION, or NAME for the newest the node holds) on the inputs;
    the network runs it next to the data. Every input must be held by some node.

    The job id is printed (on stderr) before waiting and again in the final line, so a job
    interrupted while waiting can still be followed with `mycel job status ID`. Exit 1 if the
    job fails or is cancelled.

    Example: mycel job run bafyrei... --input text=bafybei... --redundancy 2

    Spot-checked: mycel job run bafyrei... --input text=bafybei... --spot-check 0.1 --trusted 12D3KooW...

    Paid: mycel job run bafyrei... --input text=bafybei... --pay 0.001eth --cluster ./mycel-cluster
    """
    named: dict[str, str] = {}
    for item in inputs:
        name, sep, cid = item.partition("=")
        if not sep or not name:
            raise click.UsageError(f"--input takes NAME=CID, got {item!r}")
        named[name] = cid
    amount = parse_amount(pay) if pay is not None else None
    wallet = open_wallet(rpc_url, contract, cluster_dir, key_file) if amount is not None else None
    with sdk_client(api_url, api_token, wallet) as client:
        job = client.run(agent, named, args, redundancy, list(regions) or None, pay=amount, wait=False,
                         spot_check=spot_check, trusted=trusted)  # fmt: skip
        if not wait:
            click.echo(job.job_id)
            return
        click.echo(f"job {job.job_id} submitted to {api_url}", err=True)
        try:
            _follow(job, quiet=as_json)
            info = job.info
            if info["state"] == "done" and amount is not None:
                # paid only now: the SDK has verified each receipt and pays exactly what it earns
                for peer, answer in job.pay().items():
                    click.echo(f"paid {peer}: {format_amount(int(answer['amount']))} ({answer['reason']})", err=True)
        except KeyboardInterrupt:
            raise Interrupted(_left_running(job.job_id, api_url)) from None
    if as_json:
        print_json(info)
    if info["state"] != "done":
        raise click.ClickException(f"job {job.job_id} {info['state']}: {_reason(info)}")
    if not as_json:
        click.echo(f"job {job.job_id} done: result {info['result']} ({_corroboration(info)})")


def _corroboration(info: dict[str, Any]) -> str:
    """One line on how the result was corroborated, with the evidence of any mismatch."""
    corroboration = info.get("corroboration") or {}
    line = str(corroboration.get("summary", "not judged yet"))
    if corroboration.get("disagreed"):
        line += "; disagreed: " + ", ".join(sorted(corroboration["disagreed"]))
    if corroboration.get("evidence"):
        line += "; evidence " + ", ".join(corroboration["evidence"]) + " (GET /v1/evidence)"
    return line


def _left_running(job_id: str, api_url: str) -> str:
    """Ctrl-C stops the waiting, not the job: its id and how to follow or cancel it."""
    api = f" --api {api_url}"
    return (f"interrupted: job {job_id} goes on at {api_url}; follow it with `mycel job status {job_id}{api}`, "
            f"cancel it with `mycel job cancel {job_id}{api}`")  # fmt: skip


def _follow(job: Any, quiet: bool) -> None:
    """Print each transition as the node reports it (event stream); unless quiet, a spinner on stderr."""
    from rich.console import Console

    console = Console(stderr=True, quiet=quiet)
    started = time.monotonic()
    with console.status(f"job {job.job_id}: queued", spinner="dots") as status:
        for event in job.events():
            console.print(f"  {event['state']:9} {event['reason']}", highlight=False, markup=False)
            status.update(f"job {job.job_id}: {event['state']} ({time.monotonic() - started:.1f} s)")
            if event["state"] in FINAL_STATES:
                break
    from sdk.errors import JobFailedError

    if job.refresh()["state"] not in FINAL_STATES:  # the stream was cut before the end: wait it out
        with contextlib.suppress(JobFailedError):  # a failed job is reported by the caller, once
            job.wait()


JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print the API's JSON answer.")


@job_group.command("status")
@click.argument("job_id")
@api_options
@JSON_OPTION
def job_status(job_id: str, api_url: str, api_token: str | None, as_json: bool) -> None:
    """Show a job's state and history. Example: mycel job status 3f2a..."""
    with sdk_client(api_url, api_token) as client:
        job = client.job(job_id).info
    if as_json:
        print_json(job)
        return
    click.echo(f"job {job_id}: {job['state']}")
    for transition in job["transitions"]:
        click.echo(f"  {transition['state']:9} {transition['reason']}")
    if job.get("group"):  # a group job: one line per run, then the aggregator's
        named = [*job["runs"].items(), *([("(aggregate)", job["aggregate"])] if job.get("aggregate") else [])]
        for name, run in named:
            click.echo(f"  run {name}: {run['state']} on {run['node'] or '-'}, result {run['result'] or '-'}")
        return
    click.echo(f"corroboration: {_corroboration(job)}")
    for peer, fetched in sorted((job.get("input_bytes_fetched") or {}).items()):
        click.echo(f"  {peer} fetched {fetched:,} input bytes to run it")


JOB_STATES = ["queued", "placing", "running", "verifying", "done", "failed", "cancelled"]


@job_group.command("list")
@click.option("--state", type=click.Choice(JOB_STATES), help="Only jobs in this state.")
@click.option("--agent", help="Only jobs of this agent (its id, NAME or NAME@VERSION).")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option("--cursor", help="Continue from where the previous page stopped (its next_cursor).")
@api_options
@JSON_OPTION
def job_list(
    state: str | None,
    agent: str | None,
    limit: int,
    cursor: str | None,
    api_url: str,
    api_token: str | None,
    as_json: bool,
) -> None:
    """Jobs this node requested, newest first. Example: mycel job list --state running"""
    with sdk_client(api_url, api_token) as client:
        jobs, next_cursor = client.jobs(state=state, agent=agent, limit=limit, cursor=cursor)
    if as_json:
        print_json({"jobs": jobs, "next_cursor": next_cursor})
        return
    if not jobs:
        click.echo("no jobs")
        return
    for job in jobs:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job["created"]))
        click.echo(f"{job['job_id']}  {job['state']:9}  {created}  {job['agent']}  {job['reason']}")
    if next_cursor is not None:
        click.echo(f"more: mycel job list --limit {limit} --cursor {next_cursor}", err=True)


@job_group.command("explain")
@click.argument("job_id")
@api_options
@JSON_OPTION
def job_explain(job_id: str, api_url: str, api_token: str | None, as_json: bool) -> None:
    """Why each node was chosen, kept as standby, or refused. Example: mycel job explain 3f2a..."""
    with sdk_client(api_url, api_token) as client:
        answer = client.fetch_json(f"/v1/jobs/{job_id}/placement")
    if as_json:
        print_json(answer)
        return
    if answer.get("group"):  # a group job: every run's placement, then the aggregator's
        for run in answer["runs"]:
            click.echo(f"== {run['dataset']}: job {run['job_id']} ({run['state']})")
            _print_candidates(run["candidates"])
        return
    _print_candidates(answer["candidates"], answer.get("input_bytes_fetched") or {})


def _print_candidates(candidates: list[dict[str, Any]], fetched: dict[str, int] | None = None) -> None:
    """One line per candidate; a node that ran the job also says the input bytes it fetched, measured."""
    fetched = fetched or {}
    for candidate in candidates:
        operator = candidate.get("operator", candidate["peer_id"])
        by = f" (operator {operator})" if operator != candidate["peer_id"] else ""
        measured = fetched.get(candidate["peer_id"])
        ran = f"; ran it: fetched {measured:,} input bytes" if measured is not None else ""
        click.echo(f"{candidate['verdict']:8} {candidate['peer_id']}{by}  {candidate['reason']}{ran}")


@job_group.command("logs")
@click.argument("job_id")
@click.option("-f", "--follow", is_flag=True, help="Stream the job's progress and each node's output until it ends.")
@api_options
@JSON_OPTION
def job_logs(job_id: str, follow: bool, api_url: str, api_token: str | None, as_json: bool) -> None:
    """The agent's output on each node that ran it. Example: mycel job logs 3f2a... --follow

    With --follow, state changes go to stderr and each node's output to stdout as its attempt
    ends (nodes return output with their result), until the job ends; Ctrl-C stops following
    (exit 130) and leaves the job running.
    """
    if follow:
        _follow_logs(job_id, api_url, api_token, as_json)
        return
    with sdk_client(api_url, api_token) as client:
        answer = client.fetch_json(f"/v1/jobs/{job_id}/logs")
    if as_json:
        print_json(answer)
        return
    for peer, text in answer["logs"].items():
        click.echo(f"== {peer}")
        click.echo(text, nl=False)


def _follow_logs(job_id: str, api_url: str, api_token: str | None, as_json: bool) -> None:
    from sdk.client import NodeLogs

    try:
        with sdk_client(api_url, api_token) as client:
            for item in client.job(job_id).follow_logs():
                if isinstance(item, NodeLogs):
                    if as_json:
                        print_json({"peer": item.peer, "logs": item.text})
                    else:
                        click.echo(f"== {item.peer}")
                        click.echo(item.text, nl=False)
                elif not as_json:
                    click.echo(f"  {item.state:9} {item.reason}", err=True)
    except KeyboardInterrupt:
        raise Interrupted from None  # the user stopped following: quiet, the job goes on


@job_group.command("cancel")
@click.argument("job_id")
@api_options
@JSON_OPTION
def job_cancel(job_id: str, api_url: str, api_token: str | None, as_json: bool) -> None:
    """Cancel a job (a job already ended stays as it was). Example: mycel job cancel 3f2a..."""
    with sdk_client(api_url, api_token) as client:
        job = client.job(job_id).cancel()
        info = job.info
    if as_json:
        print_json(info)
        return
    click.echo(f"job {job_id}: {info['state']}")


@job_group.command("result")
@click.argument("job_id")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="A new path (or empty directory).")
@api_options
def job_result(job_id: str, output: Path, api_url: str, api_token: str | None) -> None:
    """Download a done job's result, check it hashes to its CID and that the receipt verifies.

    Exit 3 if either does not check out, 2 if OUTPUT already holds files (nothing is merged).
    Example: mycel job result 3f2a... -o ./result
    """
    from rich.console import Console

    console = Console(stderr=True, quiet=not sys.stderr.isatty())
    with sdk_client(api_url, api_token) as client:
        job = client.job(job_id)
        with console.status(f"downloading and re-hashing the result of {job_id}"):
            job.result(output)
        signer = job.receipt().node
    click.echo(f"{output}: {job.result_cid} verified; receipt signed by {signer}")


COMMANDS = [job_group]
