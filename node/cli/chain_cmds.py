"""``mycel chain dev|fund`` and ``mycel ledger deposit|withdraw|balance|claims|register|verify``.

Client commands sign with the client's key file on this machine (``--key``); the chain is
named by ``--rpc-url``/``--contract`` or by a cluster directory (``--cluster``), whose
cluster.json records the dev chain ``mycel cluster up --chain`` started.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from node.cli.common import api_options, data_dir_option, format_amount, print_json, resolve_data_dir, sdk_client

F = TypeVar("F", bound=Callable[..., Any])

_UNITS = {"eth": 10**18, "gwei": 10**9, "wei": 1}


def parse_amount(text: str) -> int:
    """``1000``, ``0.5eth``, ``20gwei`` -> wei."""
    value = text.strip().lower().replace("_", "")
    unit = next((unit for unit in _UNITS if value.endswith(unit)), "")
    number, scale = value[: len(value) - len(unit)], _UNITS.get(unit, 1)
    try:
        from decimal import Decimal, InvalidOperation

        wei = Decimal(number) * scale
    except InvalidOperation:
        raise click.BadParameter(f"{text!r} is not an amount (examples: 1000, 0.5eth, 20gwei)") from None
    if wei < 0 or wei != int(wei):
        raise click.BadParameter(f"{text!r} is not a whole, non-negative number of wei")
    return int(wei)


def chain_options(func: F) -> F:
    for option in reversed(
        [
            click.option("--rpc-url", envvar="MYCEL_CHAIN_RPC_URL", help="EVM JSON-RPC endpoint."),
            click.option("--contract", envvar="MYCEL_CHAIN_CONTRACT", help="Ledger contract address."),
            click.option(
                "--cluster",
                "cluster_dir",
                type=click.Path(file_okay=False, path_type=Path),
                help="Take the chain from this cluster directory (mycel cluster up --chain).",
            ),
        ]
    ):
        func = option(func)
    return func


def key_option(func: F) -> F:
    return click.option(
        "--key",
        "key_file",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="MYCEL_CLIENT_KEY",
        default="~/.mycelnet/client.key",
        show_default=True,
        help="The client's EVM key file (hex; created on first use).",
    )(func)


def resolve_chain(rpc_url: str | None, contract: str | None, cluster_dir: Path | None) -> tuple[str, str]:
    if cluster_dir is not None:
        from node.cluster import read_cluster_chain

        chain = read_cluster_chain(cluster_dir)
        if chain is None:
            raise click.ClickException(f"the cluster in {cluster_dir} runs no chain (start it with --chain)")
        return chain.rpc_url, chain.contract
    if not rpc_url or not contract:
        raise click.UsageError("name the chain: --rpc-url and --contract, or --cluster DIR")
    return rpc_url, contract


def open_wallet(rpc_url: str | None, contract: str | None, cluster_dir: Path | None, key_file: Path) -> Any:
    from sdk.wallet import Wallet

    url, address = resolve_chain(rpc_url, contract, cluster_dir)
    return Wallet.open(url, address, key_file)


# -- mycel chain ---------------------------------------------------------------------------
@click.group("chain")
def chain_group() -> None:
    """A local dev chain (anvil, installed by make setup) with the ledger deployed."""


@chain_group.command("dev")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default="./mycel-chain",
              show_default=True, help="Where anvil keeps its state and log.")  # fmt: skip
@click.option("--port", type=int, default=8545, show_default=True)
@click.option("--block-time", type=float, default=None, help="Seconds per block (default: mine each transaction).")
def chain_dev(directory: Path, port: int, block_time: float | None) -> None:
    """Run anvil on 127.0.0.1 with the ledger deployed, until Ctrl-C; state survives restarts.

    Example: mycel chain dev --port 8545   (then: export MYCEL_CHAIN_RPC_URL=... MYCEL_CHAIN_CONTRACT=...)
    """
    from contracts.devchain import DEV_CHAIN_ID, start_dev_chain

    chain = start_dev_chain(directory, port, block_time)
    info = {"rpc_url": chain.rpc_url, "contract": chain.contract, "chain_id": DEV_CHAIN_ID, "pid": chain.pid}
    (directory / "chain.json").write_text(json.dumps(info, indent=1))
    click.echo(f"dev chain {chain.rpc_url}  ledger {chain.contract}  (Ctrl-C stops it)")
    click.echo(f"export MYCEL_CHAIN_RPC_URL={chain.rpc_url} MYCEL_CHAIN_CONTRACT={chain.contract}")
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        chain.stop()
        click.echo("dev chain stopped", err=True)


@chain_group.command("fund")
@click.argument("address", required=False)
@click.option("--amount", default="1000eth", show_default=True, help="New balance (wei, or with eth/gwei).")
@click.option("--rpc-url", envvar="MYCEL_CHAIN_RPC_URL", help="The dev chain's JSON-RPC endpoint.")
@click.option("--cluster", "cluster_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Take the chain from this cluster directory (mycel cluster up --chain).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the address and its new balance in wei.")
@key_option
def chain_fund(address: str | None, amount: str, rpc_url: str | None, cluster_dir: Path | None, as_json: bool,
               key_file: Path) -> None:  # fmt: skip
    """Set an account's balance on a dev chain (anvil only); default: the client key's address.

    A plain balance change: no ledger contract is involved. Fund a node's chain account
    (printed by `mycel init`, and by `mycel node doctor` when it cannot pay gas) so it can
    register and claim.
    Example: mycel chain fund 0x... --rpc-url http://127.0.0.1:8545
    """
    from contracts.devchain import fund

    if cluster_dir is not None:
        url, _ = resolve_chain(None, None, cluster_dir)
    elif rpc_url:
        url = rpc_url
    else:
        raise click.UsageError("name the chain: --rpc-url URL (env MYCEL_CHAIN_RPC_URL) or --cluster DIR")
    if address is None:
        from contracts.keys import load_or_create_key

        address = str(load_or_create_key(resolve_data_dir(key_file)).address)
    elif not re.fullmatch(r"0x[0-9a-fA-F]{40}", address):
        raise click.BadParameter(f"{address!r} is not a 0x address of 40 hex digits", param_hint="ADDRESS")
    wei = parse_amount(amount)
    fund(url, address, wei)
    if as_json:
        print_json({"address": address, "balance": wei})
    else:
        click.echo(f"{address} now holds {format_amount(wei)}")


# -- mycel ledger --------------------------------------------------------------------------
@click.group("ledger")
def ledger_group() -> None:
    """Escrow, claims and settlement on the ledger contract."""


@ledger_group.command("deposit")
@click.argument("amount")
@chain_options
@key_option
def ledger_deposit(amount: str, rpc_url: str | None, contract: str | None, cluster_dir: Path | None,
                   key_file: Path) -> None:  # fmt: skip
    """Put AMOUNT into the client's escrow (wei, or 0.1eth / 20gwei).

    Example: mycel ledger deposit 0.1eth --cluster ./mycel-cluster
    """
    wallet = open_wallet(rpc_url, contract, cluster_dir, key_file)
    tx = wallet.deposit(parse_amount(amount))
    deposited, escrow = format_amount(parse_amount(amount)), format_amount(wallet.balance())
    click.echo(f"deposited {deposited} for {wallet.address} (tx {tx}); escrow {escrow}")


@ledger_group.command("withdraw")
@click.argument("amount", required=False)
@chain_options
@key_option
def ledger_withdraw(amount: str | None, rpc_url: str | None, contract: str | None, cluster_dir: Path | None,
                    key_file: Path) -> None:  # fmt: skip
    """With AMOUNT: announce a withdrawal (it unlocks after 8 days, once every authorisation
    the nodes accepted has expired). Without: take out an unlocked withdrawal.

    Example: mycel ledger withdraw 0.05eth --cluster ./mycel-cluster
    """
    wallet = open_wallet(rpc_url, contract, cluster_dir, key_file)
    if amount is not None:
        unlocks = wallet.request_withdrawal(parse_amount(amount))
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(unlocks))
        click.echo(f"withdrawal of {format_amount(parse_amount(amount))} unlocks at {when}")
        return
    tx = wallet.withdraw()
    click.echo(f"withdrawn (tx {tx}); escrow now {format_amount(wallet.balance())}")


@ledger_group.command("balance")
@click.argument("address", required=False)
@click.option("--json", "as_json", is_flag=True)
@chain_options
@key_option
def ledger_balance(address: str | None, as_json: bool, rpc_url: str | None, contract: str | None,
                   cluster_dir: Path | None, key_file: Path) -> None:  # fmt: skip
    """Escrow, pending withdrawal and node earnings of ADDRESS (default: the client key's).

    Amounts in ETH/gwei; --json gives raw wei.
    Example: mycel ledger balance --cluster ./mycel-cluster
    """
    wallet = open_wallet(rpc_url, contract, cluster_dir, key_file)
    target = address or wallet.address
    ledger = wallet.ledger
    pending, unlocks = ledger.pending_withdrawal(target)
    info = {"address": target, "escrow": ledger.balance(target), "earnings": ledger.earnings(target),
            "pending_withdrawal": pending, "unlocks_at": unlocks}  # fmt: skip
    if as_json:
        click.echo(json.dumps(info))
        return
    click.echo(f"address             {target}")
    for key in ("escrow", "earnings", "pending_withdrawal"):
        click.echo(f"{key.replace('_', ' '):19} {format_amount(int(info[key]))}")
    if unlocks:
        click.echo(f"unlocks at          {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(unlocks))}")


@ledger_group.command("claims")
@api_options
@click.option("--state", type=click.Choice(["pending", "submitted", "settled", "failed"]))
@click.option("--json", "as_json", is_flag=True)
def ledger_claims(api_url: str, api_token: str | None, state: str | None, as_json: bool) -> None:
    """The claims a node made for the paid jobs it ran, and where each stands.

    Example: mycel ledger claims --api http://127.0.0.1:5080 --state failed
    """
    with sdk_client(api_url, api_token) as client:
        answer = client.claims(state)
    if as_json:
        print_json(answer)
        return
    click.echo(f"node account {answer['address']}")
    width = max([len("JOB"), *(len(str(claim["job_id"])) for claim in answer["claims"])])
    click.echo(f"{'JOB':{width}}  {'STATE':9}  {'AMOUNT':>24}  TX OR ERROR")
    for claim in answer["claims"]:
        detail = claim["error"] or claim["tx_hash"]
        click.echo(
            f"{claim['job_id']:{width}}  {claim['state']:9}  {format_amount(int(claim['amount'])):>24}  {detail}"
        )


@ledger_group.command("register")
@data_dir_option
@chain_options
def ledger_register(data_dir: Path, rpc_url: str | None, contract: str | None, cluster_dir: Path | None) -> None:
    """Bind this node's EVM address to its peer ID on the ledger (a running node does it itself).

    Example: mycel ledger register --data-dir ~/.mycelnet --rpc-url http://127.0.0.1:8545 --contract 0x...
    """
    from web3 import Web3

    from contracts.binding import binding_message
    from contracts.keys import load_or_create_key
    from contracts.ledger import Ledger
    from node.identity import load_or_create

    url, address = resolve_chain(rpc_url, contract, cluster_dir)
    directory = resolve_data_dir(data_dir)
    identity = load_or_create(directory)
    account = load_or_create_key(directory / "chain.key")
    ledger = Ledger(Web3(Web3.HTTPProvider(url)), address)
    binding = identity.sign(binding_message(account.address, identity.peer_id, ledger.address))
    ledger.register(account, identity.peer_id.encode(), binding)
    click.echo(f"registered {account.address} as {identity.peer_id}")


@ledger_group.command("verify")
@click.argument("job_id")
@api_options
@chain_options
@click.option("--json", "as_json", is_flag=True)
def ledger_verify(job_id: str, api_url: str, api_token: str | None, rpc_url: str | None, contract: str | None,
                  cluster_dir: Path | None, as_json: bool) -> None:  # fmt: skip
    """Check JOB_ID's payment on chain against the signed receipts (exit 3 if anything disagrees).

    --api names a node that holds the job (the one it was submitted to); every node that ran
    it (a redundant job has several) is checked against its own receipt.

    Example: mycel ledger verify 3f2a... --cluster ./mycel-cluster --api http://127.0.0.1:5080
    """
    from sdk.verify import verify_settlement

    url, address = resolve_chain(rpc_url, contract, cluster_dir)
    with sdk_client(api_url, api_token) as client:
        signed = client.job(job_id).all_receipt_bytes()
    if not signed:
        raise click.ClickException(f"job {job_id} has no receipt on {api_url} yet; nothing was settled for it")
    checks = verify_settlement(job_id, url, address, receipts=signed.values())
    if as_json:
        print_json([check.__dict__ for check in checks])
        return
    for check in checks:
        click.echo(f"settled: {format_amount(check.amount)} to {check.node_peer_id} ({check.node_address}) for result "
                   f"{check.result} in {check.tx_hash}, block {check.block}")  # fmt: skip


COMMANDS = [chain_group, ledger_group]
