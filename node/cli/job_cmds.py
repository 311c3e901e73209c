"""``mycel job run|list|status|explain|logs|result``: jobs through a node's HTTP API."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from node.cli.chain_cmds import chain_options, key_option, open_wallet, parse_amount
from node.cli.common import VerificationFailed

API_OPTION = click.option(
    "--api", "api_url", envvar="MYCEL_API", default="http://127.0.0.1:5080", show_default=True, help="Node API URL."
)


def _call(method: str, url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail", exc.reason)
        except ValueError:
            detail = exc.reason
        raise click.ClickException(f"{method} {url}: {exc.code} {detail}") from None
    except urllib.error.URLError as exc:
        raise click.ClickException(f"cannot reach the node API at {url}: {exc.reason}") from None
    return json.loads(raw) if raw[:1] in (b"{", b"[") else raw


def get_or_print(url: str, as_json: bool) -> Any:
    """GET a node's JSON; with --json print it as it came and return None (nothing more to show)."""
    answer = _call("GET", url)
    if as_json:
        click.echo(json.dumps(answer))
        return None
    return answer


@click.group("job")
def job_group() -> None:
    """Run jobs on the network and follow them."""


@job_group.command("run")
@click.argument("agent")
@click.option("--input", "inputs", multiple=True, metavar="NAME=CID", help="An input (repeatable).")
@click.option("--arg", "args", multiple=True, help="An argument for the agent (repeatable).")
@click.option("--redundancy", type=click.IntRange(1, 16), default=1, show_default=True)
@click.option("--region", "regions", multiple=True, help="Regions the data may go to (repeatable).")
@click.option("--wait/--no-wait", default=True, show_default=True)
@click.option("--pay", default=None, help="Pay up to this much (wei, or gwei/eth) per node, signed with --key "
              "once the result and receipts check out.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True)
@API_OPTION
@chain_options
@key_option
def job_run(
    agent: str,
    inputs: tuple[str, ...],
    args: tuple[str, ...],
    redundancy: int,
    regions: tuple[str, ...],
    wait: bool,
    pay: str | None,
    as_json: bool,
    api_url: str,
    rpc_url: str | None,
    contract: str | None,
    cluster_dir: Path | None,
    key_file: Path,
) -> None:
    """Submit AGENT (its CID) on the inputs; the network runs it next to the data.

    Example: mycel job run bafyrei... --input text=bafybei... --redundancy 2

    Paid: mycel job run bafyrei... --input text=bafybei... --pay 0.001eth --cluster ./mycel-cluster
    """
    named: dict[str, str] = {}
    for item in inputs:
        name, sep, cid = item.partition("=")
        if not sep or not name:
            raise click.UsageError(f"--input takes NAME=CID, got {item!r}")
        named[name] = cid
    body = {"agent": agent, "inputs": named, "args": list(args), "redundancy": redundancy, "regions": list(regions)}
    paid = None
    if pay is not None:
        paid = _commitment(parse_amount(pay), open_wallet(rpc_url, contract, cluster_dir, key_file))
        body |= {"job_id": paid[0], "payment": paid[1].encode().hex()}
    job_id = _call("POST", f"{api_url}/v1/jobs", body)["job_id"]
    if not wait:
        click.echo(job_id)
        return
    job = _follow(api_url, job_id, quiet=as_json)
    if as_json:
        click.echo(json.dumps(job))
    else:
        click.echo(f"{job['state']}: {job['transitions'][-1]['reason']}")
        if job.get("result"):
            click.echo(f"result: {job['result']}")
    if job["state"] != "done":
        raise VerificationFailed(f"job {job_id} {job['state']}: {job['transitions'][-1]['reason']}")
    if paid is not None:
        for peer, answer in _pay(api_url, job_id, paid[2], paid[1]).items():
            click.echo(f"paid {peer}: {answer['amount']} wei ({answer['reason']})", err=as_json)


def _commitment(max_amount: int, wallet: Any) -> tuple[str, Any, Any]:
    """A job id chosen here and the wallet's commitment for it (terms only: nothing claimable)."""
    job_id = os.urandom(16).hex()
    return job_id, wallet.commit(job_id, max_amount, max_amount), wallet


def _pay(api_url: str, job_id: str, wallet: Any, commitment: Any) -> dict[str, Any]:
    """After the job is done: the SDK verifies each receipt and pays what it earns."""
    import asyncio

    from sdk.client import Client, Job

    async def pay() -> dict[str, Any]:
        async with Client(api_url, wallet=wallet) as client:
            return await Job(client, job_id, commitment).pay()

    try:
        return asyncio.run(pay())
    except Exception as exc:  # the SDK's typed errors, shown as the CLI shows every failure
        raise VerificationFailed(f"job {job_id} done but not paid: {exc}") from None


def _follow(api_url: str, job_id: str, quiet: bool) -> dict[str, Any]:
    """Poll until the job ends; unless quiet, a live spinner on stderr and one line per transition."""
    from rich.console import Console

    console = Console(stderr=True)
    seen = 0
    started = time.monotonic()
    with console.status(f"job {job_id}: queued", spinner="dots") as status:
        while True:
            job: dict[str, Any] = _call("GET", f"{api_url}/v1/jobs/{job_id}")
            for transition in job["transitions"][seen:]:
                if not quiet:
                    console.print(f"  {transition['state']:9} {transition['reason']}", highlight=False, markup=False)
            seen = len(job["transitions"])
            if not quiet:
                status.update(f"job {job_id}: {job['state']} ({time.monotonic() - started:.1f} s)")
            if job["state"] in ("done", "failed", "cancelled"):
                return job
            time.sleep(0.2)


JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print the API's JSON answer.")


@job_group.command("status")
@click.argument("job_id")
@API_OPTION
@JSON_OPTION
def job_status(job_id: str, api_url: str, as_json: bool) -> None:
    """Show a job's state and history. Example: mycel job status 3f2a..."""
    job = get_or_print(f"{api_url}/v1/jobs/{job_id}", as_json)
    if job is None:
        return
    click.echo(f"job {job_id}: {job['state']}")
    for transition in job["transitions"]:
        click.echo(f"  {transition['state']:9} {transition['reason']}")


JOB_STATES = ["queued", "placing", "running", "verifying", "done", "failed", "cancelled"]


@job_group.command("list")
@click.option("--state", type=click.Choice(JOB_STATES), help="Only jobs in this state.")
@click.option("--agent", help="Only jobs of this agent (its CID).")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option("--cursor", help="Continue from where the previous page stopped (its next_cursor).")
@API_OPTION
@JSON_OPTION
def job_list(state: str | None, agent: str | None, limit: int, cursor: str | None, api_url: str, as_json: bool) -> None:
    """Jobs this node requested, newest first. Example: mycel job list --state running"""
    from sdk.errors import SdkError
    from sdk.sync import SyncClient

    try:
        with SyncClient(api_url, timeout=60) as client:
            jobs, next_cursor = client.jobs(state=state, agent=agent, limit=limit, cursor=cursor)
    except SdkError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"jobs": jobs, "next_cursor": next_cursor}))
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
@API_OPTION
@JSON_OPTION
def job_explain(job_id: str, api_url: str, as_json: bool) -> None:
    """Why each node was chosen, kept as standby, or refused. Example: mycel job explain 3f2a..."""
    answer = get_or_print(f"{api_url}/v1/jobs/{job_id}/placement", as_json)
    if answer is None:
        return
    for candidate in answer["candidates"]:
        click.echo(f"{candidate['verdict']:8} {candidate['peer_id']}  {candidate['reason']}")


@job_group.command("logs")
@click.argument("job_id")
@API_OPTION
@JSON_OPTION
def job_logs(job_id: str, api_url: str, as_json: bool) -> None:
    """The agent's output on each node that ran it. Example: mycel job logs 3f2a..."""
    answer = get_or_print(f"{api_url}/v1/jobs/{job_id}/logs", as_json)
    if answer is None:
        return
    for peer, text in answer["logs"].items():
        click.echo(f"== {peer}")
        click.echo(text, nl=False)


@job_group.command("result")
@click.argument("job_id")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="A new directory.")
@API_OPTION
def job_result(job_id: str, output: Path, api_url: str) -> None:
    """Download a done job's result, check it hashes to its CID and that the receipt verifies.

    Example: mycel job result 3f2a... -o ./result
    """
    import io
    import tarfile

    from agents import receipt
    from storage.unixfs.importer import NullSink, import_path

    job = _call("GET", f"{api_url}/v1/jobs/{job_id}")
    if job["state"] != "done":
        raise click.ClickException(f"job {job_id} is {job['state']}, not done")
    checked = receipt.verify(_call("GET", f"{api_url}/v1/jobs/{job_id}/receipt"))
    if str(checked.result) != job["result"]:
        raise VerificationFailed(f"the receipt names {checked.result}, the job {job['result']}")
    from rich.console import Console

    console = Console(stderr=True, quiet=not sys.stderr.isatty())
    with console.status(f"downloading {job['result']}"):
        archive = _call("GET", f"{api_url}/v1/blobs/{job['result']}")
    output.mkdir(parents=True, exist_ok=False)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(output, filter="data")
    with console.status(f"re-hashing {output}"):
        actual = import_path(output, NullSink()).cid
    if str(actual) != job["result"]:
        raise VerificationFailed(f"downloaded result hashes to {actual}, not {job['result']}")
    click.echo(f"{output}: {actual} verified; receipt signed by {checked.node}")


COMMANDS = [job_group]
