"""Private data commands: ``put --private`` options, ``data policy|grant|revoke``.

Owner and client keys stay on this machine (``--key``, default ~/.mycelnet/owner.key):
the CLI signs policies, revocations and grants here and sends only the signed records.
A policy file is JSON with the fields of :class:`sdk.keys.PolicyTerms` (holders, agents,
clients, max_result_bytes, release_logs, release_to, holder_regions,
regions_are_self_declared, ttl_seconds, version, publishers); flags given on the command line
override the file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, TypeVar

import click

from node.cli.common import api_options, parse_cid, print_json, sdk_client

F = TypeVar("F", bound=Callable[..., Any])
_KEY_HELP = "Owner key file (Ed25519 seed as hex, created 0600 on first use)."


def private_options(func: F) -> F:
    """The policy options of ``mycel put --private``."""
    for option in reversed(
        [
            click.option("--private", is_flag=True, help="Store as a private dataset under a policy you sign here."),
            click.option(
                "--policy",
                "policy_file",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="Policy terms as JSON (see `mycel data --help`).",
            ),
            click.option("--holder", "holders", multiple=True, help="Peer ID of a node that may hold replicas."),
            click.option("--allow-agent", "agents", multiple=True, help="Agent CID that may run on the data."),
            click.option("--allow-client", "clients", multiple=True, help="Client key that may submit jobs."),
            click.option(
                "--allow-publisher",
                "publishers",
                multiple=True,
                help="Publisher key: agents it signed (`mycel agent sign`) may run on the data.",
            ),
            click.option("--max-result-bytes", type=int, default=None, help="Largest result a job may release."),
            click.option("--ttl", "ttl_seconds", type=int, default=None, help="Seconds the policy holds."),
            click.option("--key", "key_file", type=click.Path(path_type=Path), default=None, help=_KEY_HELP),
        ]
    ):
        func = option(func)
    return func


def policy_terms(policy_file: Path | None, **flags: Any) -> Any:
    """PolicyTerms from the file, then the flags; a file naming regions must also say they are self-declared."""
    from sdk.errors import UsageError
    from sdk.keys import PolicyTerms

    known = {f.name for f in fields(PolicyTerms)}
    given: dict[str, Any] = {}
    if policy_file is not None:
        try:
            given = json.loads(policy_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"{policy_file} is not valid JSON: {exc}") from None
        if not isinstance(given, dict) or set(given) - known:
            raise UsageError(f"{policy_file} must be a JSON object of {sorted(known)}")
    for name, value in flags.items():
        if value not in (None, ()):
            given[name] = value
    for name in ("holders", "clients", "release_to", "holder_regions", "publishers"):
        given[name] = tuple(given.get(name, ()))
    given["agents"] = tuple(parse_cid(str(a)) for a in given.get("agents", ()))
    try:
        return replace(PolicyTerms(), **given)
    except TypeError as exc:
        raise UsageError(f"bad policy terms: {exc}") from None


def owner_key(key_file: Path | None) -> Any:
    from sdk.keys import DEFAULT_OWNER_KEY, Keypair

    return Keypair.load_or_create(key_file or DEFAULT_OWNER_KEY)


@click.group("data")
def data_group() -> None:
    """Private datasets: show or replace a policy, issue grants, revoke.

    Example: mycel put --private --api URL --holder 12D3KooW... --allow-agent bafy... ./eu.csv
    """


@data_group.command("policy")
@click.argument("cid")
@click.option("--set", "policy_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Replace the policy with these terms (give a higher version).")  # fmt: skip
@click.option("--key", "key_file", type=click.Path(path_type=Path), default=None, help=_KEY_HELP)
@api_options
def policy_cmd(cid: str, policy_file: Path | None, key_file: Path | None, api_url: str, api_token: str | None) -> None:
    """Show how a node holds a private dataset, or sign and send a new policy version for it.

    Example: mycel data policy bafy... --set policy-v2.json --api http://127.0.0.1:5080
    """
    root = parse_cid(cid)
    with sdk_client(api_url, api_token) as client:
        if policy_file is not None:
            signed = owner_key(key_file).policy(root, policy_terms(policy_file))
            client.apply_policy(signed.data)
        print_json(client.policy(root))


@data_group.command("grant")
@click.argument("cid")
@click.argument("audience")
@click.option("--ttl", "ttl_seconds", type=int, default=24 * 3600, show_default=True, help="Seconds it holds.")
@click.option("--allow-agent", "agents", multiple=True, help="Limit the grant to these agent CIDs.")
@click.option("--from", "parent_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Delegate a grant chain you hold (a file this command wrote) one link further.")  # fmt: skip
@click.option("--key", "key_file", type=click.Path(path_type=Path), default=None, help=_KEY_HELP)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Where to write the chain.")
def grant_cmd(cid: str, audience: str, ttl_seconds: int, agents: tuple[str, ...], parent_file: Path | None,
              key_file: Path | None, output: Path) -> None:  # fmt: skip
    """Sign a grant letting AUDIENCE (a client key) run agents on dataset CID; writes the chain as JSON.

    Example: mycel data grant bafy... 12D3KooW... --ttl 3600 -o grant.json
    """
    from sdk.errors import UsageError

    parent: list[bytes] = []
    if parent_file is not None:
        try:
            parent = [bytes.fromhex(link) for link in json.loads(parent_file.read_text())["chain"]]
        except (ValueError, KeyError, TypeError):
            raise UsageError(f"{parent_file} is not a grant chain written by `mycel data grant`") from None
    chain = owner_key(key_file).grant(audience, parse_cid(cid), ttl_seconds, [parse_cid(a) for a in agents], parent)
    output.write_text(json.dumps({"dataset": cid, "audience": audience, "chain": [link.hex() for link in chain]}))
    click.echo(f"grant chain of {len(chain)} link(s) for {audience} written to {output}")


@data_group.command("revoke")
@click.argument("cid")
@click.option("--version", type=int, required=True, help="Withdraw every policy up to this version.")
@click.option("--key", "key_file", type=click.Path(path_type=Path), default=None, help=_KEY_HELP)
@api_options
def revoke_cmd(cid: str, version: int, key_file: Path | None, api_url: str, api_token: str | None) -> None:
    """Revoke a dataset's policy on a node: its blocks are then served to nobody and no job runs on them.

    Example: mycel data revoke bafy... --version 1 --api http://127.0.0.1:5080
    """
    with sdk_client(api_url, api_token) as client:
        client.apply_policy(owner_key(key_file).revoke(parse_cid(cid), version).data)
        print_json(client.policy(parse_cid(cid)))


COMMANDS = [data_group]
