"""``mycel init``, ``mycel node init|start|stop|status|doctor|reputation`` and ``mycel cluster up|down``."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import click

from node.cli import common
from node.cli.common import (
    API_TOKEN_ENV,
    API_URL_ENV,
    DEFAULT_DATA_DIR,
    api_options,
    format_amount,
    print_json,
    resolve_data_dir,
    sdk_client,
)

_DIR = click.Path(file_okay=False, path_type=Path)


@click.group("node")
def node_group() -> None:
    """Run and inspect a node daemon."""


def _load(config_file: Path | None, data_dir: Path | None, overrides: dict[str, Any]) -> Any:
    """The config ``mycel node start`` would run with: flag > env > node.toml > defaults."""
    from node.config import find_config_file, load_config

    path = find_config_file(config_file, data_dir)
    return load_config(path, {"node.data_dir": str(data_dir) if data_dir else None, **overrides})


@click.command("init")
@click.option("--data-dir", type=_DIR, envvar="MYCEL_DATA_DIR", default=DEFAULT_DATA_DIR, show_default=True,
              help="[node] data_dir; node.toml is written there (env MYCEL_DATA_DIR).")  # fmt: skip
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the file here instead of <data dir>/node.toml (start it with --config).")  # fmt: skip
@click.option("--region", help="[node] region, e.g. eu-west")
@click.option("--listen", multiple=True, help="[node] listen multiaddr (repeatable)")
@click.option("--api", help="[api] listen HOST:PORT")
@click.option("--bootstrap", multiple=True, help="[node] bootstrap multiaddr (repeatable)")
@click.option("--mdns/--no-mdns", default=None, help="[node] mdns")
@click.option("--rpc-url", help="[chain] rpc_url: settle on this EVM chain")
@click.option("--contract", help="[chain] contract: the ledger's address")
@click.option("--chain-key", type=click.Path(dir_okay=False, path_type=Path),
              help="[chain] key_file (default <data dir>/chain.key)")  # fmt: skip
@click.option("--price", help="[capacity] price_per_cpu_second (wei, or with gwei/eth)")
@click.option("--force", is_flag=True, help="Rewrite an existing node.toml (what is not given keeps its value).")
def init_cmd(data_dir: Path, config_file: Path | None, region: str | None, listen: tuple[str, ...], api: str | None,
             bootstrap: tuple[str, ...], mdns: bool | None, rpc_url: str | None, contract: str | None,
             chain_key: Path | None, price: str | None, force: bool) -> None:  # fmt: skip
    """Write node.toml (flags, then MYCEL_* variables, then defaults) and make the node's keys.

    `mycel node start` then reads it on every start, so settings given once persist. With
    --force over an existing file, what this run does not set keeps the file's value.
    Example: mycel init --region eu-west --rpc-url http://127.0.0.1:8545 --contract 0x...
    """
    from node.cli.chain_cmds import parse_amount
    from node.config import CONFIG_FILE, load_config, write_config
    from node.errors import ConfigError
    from node.identity import load_or_create

    directory = resolve_data_dir(data_dir)
    overrides = {
        "node.data_dir": str(directory),
        "node.region": region,
        "node.listen": list(listen) or None,
        "node.bootstrap": list(bootstrap) or None,
        "node.mdns": mdns,
        "api.listen": api,
        "chain.rpc_url": rpc_url,
        "chain.contract": contract,
        "chain.key_file": str(resolve_data_dir(chain_key)) if chain_key else None,
        "capacity.price_per_cpu_second": parse_amount(price) if price is not None else None,
    }
    target = config_file or directory / CONFIG_FILE
    config = load_config(None, overrides)
    if force and target.is_file():  # keep what the old file set and this run does not change
        with contextlib.suppress(ConfigError):  # an unreadable old file is what --force replaces
            config = load_config(target, overrides)
    write_config(target, config, force)
    click.echo(f"wrote {target}")
    click.echo(f"peer id        {load_or_create(directory).peer_id}")
    rpc = str(config.get("chain", "rpc_url"))
    if rpc:
        from contracts.keys import load_or_create_key

        key_file = resolve_data_dir(Path(str(config.get("chain", "key_file")) or directory / "chain.key"))
        address = load_or_create_key(key_file).address
        click.echo(f"chain account  {address}  (pays gas; fund it: mycel chain fund {address} --rpc-url {rpc})")
    else:
        click.echo("settlement     off (to earn: mycel init --force --rpc-url URL --contract 0x...)")
    where = (
        f" --config {target}"
        if config_file
        else ("" if data_dir == Path(DEFAULT_DATA_DIR) else f" --data-dir {directory}")
    )
    from node.daemon import probe_lock

    if probe_lock(directory)[0]:  # a running node read its settings when it started
        on = "" if data_dir == Path(DEFAULT_DATA_DIR) else f" --data-dir {directory}"
        click.echo(f"restart with   mycel node stop{on}; mycel node start{where}   (a node runs on {directory})")
    else:
        click.echo(f"start with     mycel node start{where}")


node_group.add_command(init_cmd)


@node_group.command("start")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Settings file (default: $MYCEL_CONFIG, else <data dir>/node.toml if it exists).")  # fmt: skip
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
    """Start a node and run until SIGINT/SIGTERM (or `mycel node stop`).

    Settings: flag > MYCEL_<SECTION>_<KEY> variable > node.toml (`mycel init` writes it in the
    data dir) > node/default-config.toml. Example: mycel node start --region eu-west
    """
    from node.daemon import start

    overrides = {
        "node.listen": list(listen) or None,
        "api.listen": api,
        "node.bootstrap": list(bootstrap) or None,
        "node.region": region,
        "node.mdns": mdns,
    }
    start(_load(config_file, data_dir, overrides), log_level.upper())
    # A stopped node keeps the interpreter's teardown: without its ~1 s, a node restarted at once
    # on the same address was re-accepted by its peers only ~60 s later
    # (tests/node/test_cluster.py::test_restart_keeps_peer_id_and_rejoins took 73-80 s instead of 16-27 s).
    common.keep_teardown()


@node_group.command("stop")
@click.option("--data-dir", type=_DIR, envvar="MYCEL_DATA_DIR", default=DEFAULT_DATA_DIR, show_default=True,
              help="Stop the node running on this data dir (env MYCEL_DATA_DIR).")  # fmt: skip
@click.option("--timeout", type=click.FloatRange(0.1, 3600), default=30.0, show_default=True,
              help="Seconds to wait for it to exit.")  # fmt: skip
def node_stop(data_dir: Path, timeout: float) -> None:
    """Stop the node running on DATA_DIR (SIGTERM; it finishes shutting down) and wait until it exits.

    Example: mycel node stop --data-dir ~/.mycelnet
    """
    from node.daemon import stop_daemon

    directory = resolve_data_dir(data_dir)
    pid = stop_daemon(directory, timeout)
    click.echo(f"stopped the node on {directory} (pid {pid})")


@node_group.command("status")
@click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar="MYCEL_DATA_DIR", default=DEFAULT_DATA_DIR
)
@click.option(
    "--api", "api_url", envvar=API_URL_ENV, default=None, help=f"Ask the node at this URL (env {API_URL_ENV})."
)
@click.option(
    "--token", "api_token", envvar=API_TOKEN_ENV, default=None, help=f"API bearer token (env {API_TOKEN_ENV})."
)
@click.option("--json", "as_json", is_flag=True, help="Print /v1/node, its effective config and the peers as JSON.")
def node_status(data_dir: Path, api_url: str | None, api_token: str | None, as_json: bool) -> None:
    """Show the running node as it reports itself: peer ID, addresses, API, settlement, store, peers.

    Example: mycel node status
    """
    from node.doctor import NodeAnswerError, fetch_effective, running_node
    from sdk.errors import NodeUnreachableError

    local = api_url is None
    if api_url is None:
        where = resolve_data_dir(data_dir)
        api_url = running_node(where)
        if api_url is None:
            raise click.ClickException(
                f"no node is running on {where} (start it with `mycel node start`, or use --api)"
            )
        if not api_token:  # the node on this data dir may take its token from node.toml
            api_token = str(_load(None, data_dir, {}).get("api", "token")) or None
    with sdk_client(api_url, api_token) as client:
        try:
            info, peers = client.node(), client.peers()
        except NodeUnreachableError as exc:
            if not local:
                raise
            raise click.ClickException(f"the node on {resolve_data_dir(data_dir)} does not answer: {exc}") from None
    try:
        effective: dict[str, Any] | None = fetch_effective(api_url, api_token)
    except NodeAnswerError:
        effective = None  # a node without /v1/node/config: show what /v1/node says
    if as_json:
        click.echo(json.dumps({**info, "config": effective, "peers": peers}))
        return
    click.echo(f"peer id: {info['peer_id']}\nversion: {info['version']}\nregion: {info['region']}")
    click.echo(f"api: {api_url}\ndashboard: {api_url}/\naddrs: {' '.join(info['addrs'])}")
    if effective is not None:
        _print_effective(effective)
    click.echo(f"peers: {sum(1 for p in peers if p['alive'])} alive of {len(peers)} known")
    if isinstance(info.get("nat"), dict):
        _print_nat(info["nat"])


def _print_nat(nat: dict[str, Any]) -> None:
    """Reachability, the relay this node is reachable through, and each connection's kind."""
    relayed_at = nat.get("relayed_addrs") or []
    click.echo(
        f"reachability: {nat.get('reachability', 'unknown')}" + (f" (relayed at {relayed_at[0]})" if relayed_at else "")
    )
    relay = nat.get("relay") or {}
    if relay.get("serving"):
        click.echo(
            f"relay: serving, {relay.get('reservations', 0)} reservation(s), {relay.get('circuits', 0)} circuit(s)"
        )
    connections: dict[str, str] = nat.get("connections") or {}
    direct = sum(1 for kind in connections.values() if kind == "direct")
    click.echo(f"connections: {direct} direct, {len(connections) - direct} relayed")
    for peer, kind in sorted(connections.items()):
        click.echo(f"  {peer} {kind}")


@node_group.command("reputation")
@api_options
@click.option("--peer", default=None, help="Only this peer ID.")
@click.option("--json", "as_json", is_flag=True, help="Print GET /v1/reputation as JSON.")
def node_reputation(api_url: str, api_token: str | None, peer: str | None, as_json: bool) -> None:
    """What this node observed of the peers it gave jobs to, best first (placement ranks by it).

    Example: mycel node reputation
    """
    from urllib.parse import quote

    with sdk_client(api_url, api_token) as client:
        answer = client.fetch_json("/v1/reputation" + (f"?peer={quote(peer)}" if peer else ""))
    if as_json:
        print_json(answer)
        return
    if not answer["peers"]:
        click.echo("no record yet: this node has not given a job to another node")
        return
    for row in answer["peers"]:
        seen = ", ".join(f"{count} {event.replace('_', ' ')}" for event, count in row["counts"].items() if count)
        state = "excluded" if row["excluded"] else f"+{row['penalty_seconds']:.0f} s"
        click.echo(f"{row['rank']:>3}  {row['peer_id']}  {state:>9}  {seen}")
    policy = f"half-life {answer['half_life_seconds']:.0f} s; excluded at {answer['exclude_at']:g} recent wrong results"
    click.echo(policy)


def _print_effective(effective: dict[str, Any]) -> None:
    settlement, store = effective["settlement"], effective.get("store", {})
    click.echo(f"data dir: {effective['data_dir']}")
    click.echo(f"config: {effective.get('config_file') or 'defaults (no node.toml)'}")
    if settlement.get("on"):
        balance = settlement.get("balance")
        held = format_amount(balance) if isinstance(balance, int) else f"unknown ({settlement.get('chain_error')})"
        registered = "yes" if settlement.get("registered") else "not yet"
        click.echo(f"settlement: on: {settlement.get('address')} holds {held}; ledger {settlement.get('contract')} "
                   f"at {settlement.get('rpc_url')}; registered {registered}")  # fmt: skip
        click.echo(f"price: {format_amount(int(effective.get('price_per_cpu_second', 0)))} per CPU-second")
    else:
        click.echo("settlement: off")
    quota = store.get("quota")
    click.echo(f"store: {store.get('blocks')} blocks, {store.get('bytes')} bytes"
               f"{f' of {quota}' if quota else ''}, {store.get('pins')} pins")  # fmt: skip


@node_group.command("doctor")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Check this settings file (default: as `mycel node start` finds it).")  # fmt: skip
@click.option("--data-dir", type=_DIR, help="[node] data_dir")
@click.option(
    "--token", "api_token", envvar=API_TOKEN_ENV, default=None, help=f"API bearer token (env {API_TOKEN_ENV})."
)
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def node_doctor(config_file: Path | None, data_dir: Path | None, api_token: str | None, as_json: bool) -> None:
    """Check the data dir, key, API, listen addresses, bootstrap peers and chain (exit 1 on a failure).

    A running node is asked what it runs with; with none, node.toml (or the defaults) is checked
    offline. Each failure comes with one line saying how to fix it.
    Example: mycel node doctor --data-dir ~/.mycelnet
    """
    from node.doctor import NodeAnswerError, fetch_effective, run_checks, running_node

    config = _load(config_file, data_dir, {})
    api_url, node, api_error = running_node(config.data_dir), None, ""
    if api_url is not None:
        try:  # the token the node reads from its own node.toml or environment works here too
            node = fetch_effective(api_url, api_token or str(config.get("api", "token")) or None)
        except NodeAnswerError as exc:
            api_error = str(exc)
    checks = run_checks(config, node, api_error)
    if as_json:
        print_json([check.__dict__ for check in checks])
    else:
        for check in checks:
            click.echo(f"{check.status:4}  {check.name:18}  {check.detail}")
            if check.fix and check.status in ("fail", "warn"):
                click.echo(f"{'':4}  {'':18}  fix: {check.fix}")
    failed = [c for c in checks if c.status == "fail"]
    if failed:
        raise click.ClickException(f"{len(failed)} check(s) failed: {', '.join(dict.fromkeys(c.name for c in failed))}")


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


COMMANDS = [init_cmd, node_group, cluster_group]
