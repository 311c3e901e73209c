"""``mycel node start|status`` and ``mycel cluster up|down``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from node.cli.common import API_TOKEN_ENV, API_URL_ENV, resolve_data_dir, sdk_client

_DIR = click.Path(file_okay=False, path_type=Path)


@click.group("node")
def node_group() -> None:
    """Run and inspect a node daemon."""


@node_group.command("start")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="[node] data_dir")
@click.option("--listen", multiple=True, help="[node] listen multiaddr (repeatable)")
@click.option("--api", help="[api] listen HOST:PORT")
@click.option("--bootstrap", multiple=True, help="[node] bootstrap multiaddr (repeatable)")
@click.option("--region", help="[node] region")
@click.option("--mdns/--no-mdns", default=None, help="[node] mdns")
@click.option("--log-level", default="INFO", show_default=True)
def node_start(
    config_file: Path | None,
    data_dir: Path | None,
    listen: tuple[str, ...],
    api: str | None,
    bootstrap: tuple[str, ...],
    region: str | None,
    mdns: bool | None,
    log_level: str,
) -> None:
    """Start a node and run until SIGINT/SIGTERM.

    Every setting is documented in node/default-config.toml; flags override the file
    and MYCEL_<SECTION>_<KEY> variables. Example: mycel node start --region eu-west
    """
    from node.config import load_config
    from node.daemon import start

    overrides = {
        "node.data_dir": str(data_dir) if data_dir else None,
        "node.listen": list(listen) or None,
        "api.listen": api,
        "node.bootstrap": list(bootstrap) or None,
        "node.region": region,
        "node.mdns": mdns,
    }
    start(load_config(config_file, overrides), log_level.upper())


@node_group.command("status")
@click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar="MYCEL_DATA_DIR", default="~/.mycelnet"
)
@click.option(
    "--api", "api_url", envvar=API_URL_ENV, default=None, help=f"Ask the node at this URL (env {API_URL_ENV})."
)
@click.option(
    "--token", "api_token", envvar=API_TOKEN_ENV, default=None, help=f"API bearer token (env {API_TOKEN_ENV})."
)
@click.option("--json", "as_json", is_flag=True, help="Print /v1/node plus the peer table as JSON.")
def node_status(data_dir: Path, api_url: str | None, api_token: str | None, as_json: bool) -> None:
    """Show whether the node in DATA_DIR (or at --api) runs, its peer ID, API and peers. Example: mycel node status"""
    from node.service import read_state
    from sdk.errors import NodeUnreachableError

    running = None
    if api_url is None:
        state = read_state(resolve_data_dir(data_dir))
        if state is None:
            raise click.ClickException(f"no node is running from {resolve_data_dir(data_dir)} (or name one with --api)")
        api_url = str(state["api_url"])
        running = f"node {state['peer_id']} (pid {state['pid']})"
    with sdk_client(api_url, api_token) as client:
        try:
            info, peers = client.node(), client.peers()
        except NodeUnreachableError as exc:
            if running is None:
                raise
            raise click.ClickException(f"{running} does not answer: {exc}") from None
    if as_json:
        click.echo(json.dumps({**info, "peers": peers}))
        return
    click.echo(f"peer id: {info['peer_id']}\nversion: {info['version']}\nregion: {info['region']}")
    click.echo(f"api: {api_url}\naddrs: {' '.join(info['addrs'])}")
    click.echo(f"peers: {sum(1 for p in peers if p['alive'])} alive of {len(peers)} known")


@node_group.command("doctor")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data-dir", type=_DIR, help="[node] data_dir")
def node_doctor(config_file: Path | None, data_dir: Path | None) -> None:
    """Check the data dir, key, API, listen addresses, bootstrap peers and chain (exit 1 on a failure).

    Example: mycel node doctor --data-dir ~/.mycelnet
    """
    from node.config import load_config
    from node.doctor import run_checks

    config = load_config(config_file, {"node.data_dir": str(data_dir) if data_dir else None})
    checks = run_checks(config)
    for check in checks:
        click.echo(f"{check.status:4}  {check.name:9}  {check.detail}")
    failed = [c for c in checks if c.status == "fail"]
    if failed:
        raise click.ClickException(f"{len(failed)} check(s) failed")


@click.group("cluster")
def cluster_group() -> None:
    """A local cluster of real node processes on 127.0.0.1."""


@cluster_group.command("up")
@click.option("--nodes", "count", type=click.IntRange(1, 32), default=3, show_default=True)
@click.option(
    "--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default="./mycel-cluster", show_default=True
)
@click.option("--region", "regions", multiple=True, help="Region of node 0, 1, ... (repeatable; default region-N).")
@click.option("--chain", is_flag=True, help="Also start a dev chain (anvil) with the ledger; nodes settle there.")
@click.option("--price", default="0", show_default=True, help="Nodes' price per CPU-second (wei, or with gwei/eth).")
@click.option("--json", "as_json", is_flag=True, help="Print the cluster file instead of a table.")
def cluster_up_cmd(count: int, directory: Path, regions: tuple[str, ...], chain: bool, price: str,
                   as_json: bool) -> None:  # fmt: skip
    """Start N nodes wired by bootstrap and wait until each sees the others.

    Example: mycel cluster up --nodes 3 --dir /tmp/c --chain --price 1gwei
    """
    from node.cli.chain_cmds import parse_amount
    from node.cluster import CLUSTER_FILE, cluster_up, read_cluster_chain

    nodes = cluster_up(count, directory, list(regions) or None, chain=chain, price=parse_amount(price))
    if as_json:
        click.echo((directory / CLUSTER_FILE).read_text())
        return
    for node in nodes:
        click.echo(f"node{node.index}\t{node.api_url}\t{node.peer_id}\t{node.region}")
    dev_chain = read_cluster_chain(directory)
    if dev_chain is not None:
        click.echo(f"chain\t{dev_chain.rpc_url}\tledger {dev_chain.contract}")
    click.echo(f"cluster file: {directory / CLUSTER_FILE}; stop with: mycel cluster down --dir {directory}")


@cluster_group.command("down")
@click.option(
    "--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default="./mycel-cluster", show_default=True
)
def cluster_down_cmd(directory: Path) -> None:
    """Stop every node of the cluster and its dev chain (SIGTERM, then SIGKILL after 15 s).

    Example: mycel cluster down --dir /tmp/c
    """
    from node.cluster import cluster_down, read_cluster_file

    count = len(read_cluster_file(directory))
    killed = cluster_down(directory)
    click.echo(json.dumps({"stopped": count, "killed": killed}) if killed else f"stopped {count} nodes")


COMMANDS = [node_group, cluster_group]
