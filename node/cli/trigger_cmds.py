"""``mycel trigger deploy|ls|rm|receipts`` and ``mycel agent invoke``: a thin shell over sdk/triggers.py.

Receipts and invocation answers are verified by the SDK before they are printed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from node.cli.common import api_options, print_json

T = TypeVar("T")


def _run(api_url: str, api_token: str | None, work: Callable[[Any], Awaitable[T]]) -> T:
    from sdk import Client

    async def main() -> T:
        async with Client(api_url, token=api_token) as client:
            return await work(client)

    return asyncio.run(main())


@click.group("trigger")
def trigger_group() -> None:
    """Run a deployed agent on new stream entries, on a schedule, or on HTTP calls."""


@trigger_group.command("deploy")
@click.argument("name")
@click.argument("agent")
@click.option("--stream", "stream", default="", help="Run on new entries of this stream id (held by the node).")
@click.option("--every-n", type=int, default=0, help="Batch N entries per invocation (default 1).")
@click.option("--every-ms", type=int, default=0, help="Or run once the oldest waiting entry is T ms old.")
@click.option("--schedule", default="", help="Run on a schedule: 'every 30s' or cron 'MIN HOUR DOM MON DOW' (UTC).")
@click.option("--invoke", "invoke", is_flag=True, help="Run on POST /v1/agents/NAME/invoke (mycel agent invoke).")
@click.option("--state", default=None, help="CID of the initial state (/in/state of the first invocation).")
@click.option("--output", default="", help="Append each /out/output to this stream (signed by the node's key).")
@click.option("--standby", default="", help="Stand by for this trigger running on PEER; take over if it dies.")
@click.option("--follower", default="", help="PEER stands by for this trigger: publish after it holds each receipt.")
@click.option("--region", "regions", multiple=True, help="Run on the stream's holder in this region nearest its head.")
@api_options
def trigger_deploy(
    name: str,
    agent: str,
    stream: str,
    every_n: int,
    every_ms: int,
    schedule: str,
    invoke: bool,
    state: str | None,
    output: str,
    standby: str,
    follower: str,
    regions: tuple[str, ...],
    api_url: str,
    api_token: str | None,
) -> None:
    """Deploy trigger NAME for AGENT (an id, NAME or NAME@VERSION the node holds).

    Example: mycel trigger deploy count counter --stream st... --every-n 10 --output counts

    With --region (repeatable) the node picks the holder of the stream inside those regions nearest
    its head (the origin when it is inside) and deploys there; none holds it: refused, saying why.
    """
    from sdk.errors import UsageError

    kinds = [kind for kind, chosen in (("stream", stream), ("schedule", schedule), ("invoke", invoke)) if chosen]
    if len(kinds) != 1:
        raise UsageError("choose exactly one of --stream ID, --schedule SPEC, --invoke")
    options = {"stream": stream, "every_n": every_n, "every_ms": every_ms, "schedule": schedule, "output": output,
               "standby": standby, "follower": follower}  # fmt: skip

    async def work(client: Any) -> Any:
        return await client.deploy_trigger(name, agent, kinds[0], state=state, regions=regions, **options)

    answer = _run(api_url, api_token, work)
    where = f" -> output stream {answer['output_stream']}" if answer["output_stream"] else ""
    click.echo(f"trigger {answer['name']} ({answer['kind']}) runs {answer['agent']}{where}")
    placement = answer.get("placement")
    if placement:
        click.echo(f"placed on {placement['peer_id']}: {placement['reason']}")


@trigger_group.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print the node's JSON answer.")
@api_options
def trigger_ls(as_json: bool, api_url: str, api_token: str | None) -> None:
    """List the node's triggers with their cursors.

    Example: mycel trigger ls --api http://127.0.0.1:5080
    """
    triggers = _run(api_url, api_token, lambda client: client.triggers.list())
    if as_json:
        print_json(triggers)
        return
    for info in triggers:
        on = {"stream": info["stream"], "schedule": info["schedule"], "invoke": "HTTP"}[info["kind"]]
        cursor = info["cursor"]
        click.echo(f"{info['name']}  {info['kind']} {on}  seq {cursor['seq']}  "
                   f"{cursor['invocations']} invocations  state {cursor['state'] or '-'}")  # fmt: skip
        for line in _placement_lines(info):
            click.echo(f"  {line}")


def _placement_lines(info: dict[str, Any]) -> list[str]:
    """Where a trigger was placed and why, each holder considered; a standby's take-over verdict."""
    lines = []
    if info.get("regions"):
        lines.append(f"regions {', '.join(info['regions'])}")
    placement = info.get("placement")
    if placement:
        by = f" by {placement['placed_by']}" if placement.get("placed_by") else ""
        lines.append(f"placed on {placement['peer_id']}{by}: {placement['reason']}")
        for row in placement["candidates"]:
            lines.append(f"  {row['verdict']:<15} {row['peer_id']} ({row['region'] or '?'}): {row['reason']}")
        if placement.get("omitted"):
            lines.append(f"  ... and {placement['omitted']} more holder(s)")
    takeover = info.get("takeover")
    if takeover and not takeover["allowed"]:
        lines.append(f"will not take over: {takeover['reason']}")
    if takeover and takeover["held_back"]:
        lines.append(f"active node gone, waiting: {takeover['held_back']}")
    return lines


@trigger_group.command("info")
@click.argument("name")
@api_options
def trigger_info(name: str, api_url: str, api_token: str | None) -> None:
    """Print trigger NAME (JSON): spec, cursor, regions, and where it was placed and why.

    Example: mycel trigger info count
    """
    print_json(_run(api_url, api_token, lambda client: client.triggers.get(name)))


@trigger_group.command("rm")
@click.argument("name")
@api_options
def trigger_rm(name: str, api_url: str, api_token: str | None) -> None:
    """Stop and remove trigger NAME.

    Example: mycel trigger rm count
    """
    _run(api_url, api_token, lambda client: client.triggers.remove(name))
    click.echo(f"removed trigger {name}")


@trigger_group.command("receipts")
@click.argument("name")
@click.option("--after", type=int, default=0, help="Invocations after this number.")
@api_options
def trigger_receipts(name: str, after: int, api_url: str, api_token: str | None) -> None:
    """Print NAME's verified receipts, one JSON line each: entries consumed and state left.

    Example: mycel trigger receipts count --after 10
    """
    for found in _run(api_url, api_token, lambda client: client.triggers.receipts(name, after)):
        run = found.run
        line = {"invocation": found.invocation, "status": found.receipt.status, "first_seq": run.first_seq,
                "last_seq": run.last_seq, "state": str(run.state) if run.state else None}  # fmt: skip
        click.echo(json.dumps(line))


@click.command("invoke")
@click.argument("name")
@click.argument("text", required=False)
@click.option("--stdin", "from_stdin", is_flag=True, help="Send standard input as the request body.")
@api_options
def agent_invoke(name: str, text: str | None, from_stdin: bool, api_url: str, api_token: str | None) -> None:
    """Call the invoke trigger NAME with TEXT (or stdin) and print the agent's output.

    Example: mycel agent invoke echo "hello"
    """
    data: bytes | str = sys.stdin.buffer.read() if from_stdin else (text or "")
    answer = _run(api_url, api_token, lambda client: client.invoke(name, data))
    if answer.output is not None:
        sys.stdout.buffer.write(answer.output)
        sys.stdout.buffer.flush()
    click.echo(f"\n{answer.status} in {answer.milliseconds:.1f} ms, receipt verified", err=True)


@click.group("pipeline")
def pipeline_group() -> None:
    """Multi-agent pipelines: stream triggers chained by their output streams, declared in one file."""


@pipeline_group.command("deploy")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@api_options
def pipeline_deploy(path: str, api_url: str, api_token: str | None) -> None:
    """Deploy every [[stage]] of PATH (TOML: name, agent, input = STREAM_ID or "stage:NAME",
    every_n, every_ms, output, state), each where its input stream is.

    Example: mycel pipeline deploy pipeline.toml
    """
    from pathlib import Path

    from sdk.triggers import deploy_pipeline, parse_pipeline

    stages = parse_pipeline(Path(path).read_text())
    for answer in _run(api_url, api_token, lambda client: deploy_pipeline(client, stages)):
        out = f" -> {answer['output_stream']}" if answer["output_stream"] else ""
        where = f" (on {answer['node']})" if answer["node"] else ""
        click.echo(f"stage {answer['name']}: {answer['stream']}{out}{where}")


COMMANDS = [trigger_group, pipeline_group]
