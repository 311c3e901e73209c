"""``mycel peers``: the nodes this node knows of, from their signed announcements."""

from __future__ import annotations

from typing import Any

import click

from node.cli.common import api_options, print_json, sdk_client

HEADERS = ("PEER ID", "REGION", "LOAD/CAPACITY", "PRICE", "LAST SEEN")


def _row(peer: dict[str, Any]) -> tuple[str, ...]:
    load = f"{peer['load']['running_jobs']}/{peer['capacity']['cpu_cores']}"
    seen = f"{peer['last_seen_seconds_ago']:.0f} s ago" + ("" if peer["alive"] else " (gone)")
    region = peer["region"] or "-"
    return peer["peer_id"], region, load, f"{peer['price']} wei/cpu-s", seen


def table(peers: list[dict[str, Any]]) -> str:
    """Left-aligned columns under HEADERS; load is running jobs / CPU cores."""
    rows = [HEADERS, *(_row(peer) for peer in peers)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADERS))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in rows)  # fmt: skip


@click.command("peers")
@api_options
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON answer.")
def peers_cmd(api_url: str, api_token: str | None, as_json: bool) -> None:
    """Peers the node knows: id, region, load/capacity, price, last announcement.

    Example: mycel peers --api http://127.0.0.1:5080
    """
    with sdk_client(api_url, api_token) as client:
        peers = client.peers()
    if as_json:
        print_json({"peers": peers})
        return
    if not peers:
        click.echo("no peers known yet (nodes announce themselves every few seconds once connected)", err=True)
        return
    click.echo(table(peers))


COMMANDS = [peers_cmd]
