"""``mycel stream create|policy|append|tail|ls|info``: write signed streams from a key this machine holds.

The writer key stays in a local file (mode 0600); the node only ever sees signed entries.
Entries printed by ``tail`` are verified (signature and chain) before they are shown.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from node.cli.common import api_options, print_json

T = TypeVar("T")

_KEY = click.option(
    "--key",
    "key_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The writer's key file (32-byte Ed25519 seed, mode 0600).",
)


def _run(api_url: str, api_token: str | None, work: Callable[[Any], Awaitable[T]]) -> T:
    from sdk import Client

    async def main() -> T:
        async with Client(api_url, token=api_token) as client:
            return await work(client)

    return asyncio.run(main())


def _entry_line(entry: Any) -> str:
    line: dict[str, Any] = {"seq": entry.seq, "cid": str(entry.cid), "time": entry.time}
    if entry.payload_cid is not None:
        line["payload_cid"] = str(entry.payload_cid)
    else:
        try:
            line["text"] = entry.payload.decode()
        except UnicodeDecodeError:
            line["base64"] = base64.b64encode(entry.payload).decode()
    return json.dumps(line)


@click.group("stream")
def stream_group() -> None:
    """Signed append-only streams (the node holds them; your key signs them)."""


_REGION = click.option(
    "--region",
    "regions",
    multiple=True,
    help="The stream's policy: its entries go only to nodes announcing this region (repeatable; "
    "a region is a label a node declares about itself).",
)


@stream_group.command("create")
@click.argument("name")
@_KEY
@_REGION
@api_options
def stream_create(name: str, key_path: Path, regions: tuple[str, ...], api_url: str, api_token: str | None) -> None:
    """Create the writer key (if KEY does not exist) and print the id of stream NAME; with --region,
    sign the stream's policy with KEY and set it on the node (before any entry is appended).

    Example: mycel stream create sensors --key ~/.mycelnet/sensors.key --region eu-west
    """
    from sdk.errors import UsageError
    from sdk.streams import load_key
    from storage.peerid import peer_id_for
    from storage.streamentry import EntryError, stream_id

    key = load_key(key_path, create=True)
    try:
        click.echo(stream_id(peer_id_for(bytes(key.verify_key)), name))
    except EntryError as exc:
        raise UsageError(str(exc)) from None
    if regions:
        held = _run(api_url, api_token, lambda client: client.stream(name, key, regions=list(regions)).create())
        click.echo(f"policy v{held.version if held else '?'}: entries only to region(s) {', '.join(regions)}")


@stream_group.command("policy")
@click.argument("name")
@_KEY
@_REGION
@click.option("--version", "version", type=click.IntRange(min=1), required=True, help="Higher than the node holds.")
@api_options
def stream_policy(
    name: str, key_path: Path, regions: tuple[str, ...], version: int, api_url: str, api_token: str | None
) -> None:
    """Replace stream NAME's policy with a newer VERSION (no --region: its entries may go anywhere).

    Example: mycel stream policy sensors --key sensors.key --region eu-west --region eu-north --version 2
    """
    from sdk.streams import load_key

    key = load_key(key_path)
    answer = _run(api_url, api_token, lambda client: client.stream(name, key).set_policy(list(regions), version))
    print_json(answer)


@stream_group.command("append")
@click.argument("name")
@click.argument("payloads", nargs=-1)
@_KEY
@click.option("--keep", type=click.IntRange(min=0), default=None, help="Retention: keep the last N entries (0: all).")
@click.option("--keep-seconds", type=click.IntRange(min=0), default=None, help="Retention: keep T seconds (0: all).")
@api_options
def stream_append(
    name: str,
    payloads: tuple[str, ...],
    key_path: Path,
    keep: int | None,
    keep_seconds: int | None,
    api_url: str,
    api_token: str | None,
) -> None:
    """Sign PAYLOADS (text; '-' reads stdin) as the next entries of NAME and append them as one batch.

    Example: mycel stream append sensors '{"t": 21.5}' --key sensors.key --keep 10000
    """
    from sdk.streams import load_key

    key = load_key(key_path)
    data = [sys.stdin.buffer.read() if p == "-" else p.encode() for p in payloads] or [sys.stdin.buffer.read()]
    retention = None
    if keep is not None or keep_seconds is not None:
        retention = {"entries": keep or 0, "seconds": keep_seconds or 0}
    answer = _run(api_url, api_token, lambda client: client.stream(name, key).append(*data, retention=retention))
    click.echo(f"{answer['stream']} head {answer['head_seq']} {answer['head_cid']}")


@stream_group.command("tail")
@click.argument("stream_id")
@click.option("--after", type=click.IntRange(min=0), default=None, help="Start after this seq (default: the head).")
@click.option("--count", type=click.IntRange(min=1), default=None, help="Stop after this many entries.")
@api_options
def stream_tail(stream_id: str, after: int | None, count: int | None, api_url: str, api_token: str | None) -> None:
    """Print STREAM_ID's entries as JSON lines, verified, as they are appended.

    Example: mycel stream tail st... --after 0 --count 10
    """

    async def work(client: Any) -> None:
        seen = 0
        async for entry in client.stream_reader(stream_id).tail(after):
            click.echo(_entry_line(entry))
            seen += 1
            if count is not None and seen >= count:
                return

    _run(api_url, api_token, work)


@stream_group.command("ls")
@api_options
def stream_ls(api_url: str, api_token: str | None) -> None:
    """List the streams the node holds: id, head seq, origin or replica, forked.

    Example: mycel stream ls --api http://127.0.0.1:5080
    """

    async def work(client: Any) -> Any:
        return await client._call("GET", "/v1/streams")

    for info in _run(api_url, api_token, work)["streams"]:
        where = "origin" if info["origin"] else f"replica of {info['source']}"
        forked = "  FORKED" if info["forked"] else ""
        click.echo(f"{info['stream']}  {info['name']}  seq {info['head_seq']}  {where}{forked}")


@stream_group.command("info")
@click.argument("stream_id")
@api_options
def stream_info(stream_id: str, api_url: str, api_token: str | None) -> None:
    """Print STREAM_ID's head, retention, fork mark and the peers announcing it (JSON).

    Example: mycel stream info st...
    """
    print_json(_run(api_url, api_token, lambda client: client.stream_reader(stream_id).info()))


COMMANDS = [stream_group]
