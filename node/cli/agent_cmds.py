"""``mycel agent init|pack|run|env|deploy|list|sign``: start an agent, bundle it, run it locally in its
sandbox, list the environment agents get, deploy it to a node and list what a node holds, or sign
it as its publisher (for private datasets whose policy approves agents by publisher key)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import click

from node.cli.agent_init import agent_init
from node.cli.common import (
    VerificationFailed,
    api_options,
    data_dir_option,
    open_store,
    print_json,
    resolve_data_dir,
    sdk_client,
)


@click.group("agent")
def agent_group() -> None:
    """Package and run agents."""


@agent_group.command("pack")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@data_dir_option
def agent_pack(directory: Path, data_dir: Path) -> None:
    """Validate DIRECTORY's mycel-agent.toml, store the bundle, print the agent id.

    Example: mycel agent pack examples/wasm-wordcount
    """
    from agents.bundle import pack

    with open_store(data_dir) as store:
        bundle = pack(directory, store)
    click.echo(bundle.agent_id)


@agent_group.command("deploy")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@api_options
def agent_deploy(directory: Path, api_url: str, api_token: str | None) -> None:
    """Upload DIRECTORY to a node, which validates and packs it; the id is checked against packing here.

    Example: mycel agent deploy examples/sensor-anomaly --api http://127.0.0.1:5080
    """
    from sdk.errors import VerificationError

    with sdk_client(api_url, api_token) as client:
        try:
            click.echo(client.deploy(directory))
        except VerificationError as exc:
            raise VerificationFailed(str(exc)) from None


@agent_group.command("list")
@api_options
@click.option("--json", "as_json", is_flag=True)
def agent_list(api_url: str, api_token: str | None, as_json: bool) -> None:
    """The agents a node holds. Example: mycel agent list --api http://127.0.0.1:5080"""
    with sdk_client(api_url, api_token) as client:
        agents = client.agents()
    if as_json:
        print_json({"agents": agents})
        return
    for agent in agents:
        click.echo(f"{agent['agent']}  {agent['name']} {agent['version']} ({agent['runtime']})  {agent['description']}")


@agent_group.command("run")
@click.argument("agent")
@click.option("--input", "inputs", multiple=True, metavar="NAME=CID|PATH",
              help="An input at $MYCEL_IN/NAME (/in/NAME in wasm); a PATH is imported to the local store.")  # fmt: skip
@click.option("--arg", "args", multiple=True, help="An argument for the agent (repeatable).")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Also write the result here (a new path).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@data_dir_option
def agent_run(
    agent: str, inputs: tuple[str, ...], args: tuple[str, ...], output: Path | None, as_json: bool, data_dir: Path
) -> None:
    """Run AGENT (a bundle directory, an agent id, or NAME[@VERSION] in the local store) on this
    machine, in the sandbox a node uses.

    Prints the result CID and the signed receipt's status; exit 1 when the agent failed or was
    killed. Example: mycel agent run ./my-agent --input input=sample.txt -o ./out
    """
    from agents.bundle import as_cid, pack, resolve
    from agents.executor import Executor
    from agents.runtime.base import RunRequest
    from agents.runtime.python import PythonRuntime
    from agents.runtime.wasm import WasmRuntime
    from node.identity import load_or_create
    from storage.files import add_path, get_path

    if output is not None and (output.exists() or output.is_symlink()):
        raise click.UsageError(f"{output} already exists; name a new path for the result")
    parsed = [_input(item) for item in inputs]
    root = resolve_data_dir(data_dir)
    identity = load_or_create(root)
    with open_store(data_dir) as store:
        named = {}
        for name, value in parsed:
            cid = as_cid(value)
            named[name] = cid if cid is not None else add_path(store, Path(value), pin=False).cid
        bundle = pack(Path(agent), store) if Path(agent).is_dir() else resolve(store, agent)
        runtimes = {"wasm": WasmRuntime(root / "wasm-cache"), "python": PythonRuntime()}
        executor = Executor(store, runtimes, identity.signing_key)  # type: ignore[arg-type]
        outcome = executor.run(RunRequest(uuid.uuid4().hex, bundle, named, args))
        if output is not None and outcome.result is not None:
            get_path(store, outcome.result, output)
    if as_json:
        result = str(outcome.result) if outcome.result else None
        click.echo(json.dumps({"status": outcome.status, "outcome": outcome.outcome.to_record(), "result": result}))
    else:
        click.echo(outcome.logs.decode("utf-8", "replace"), nl=False, err=True)
        click.echo(f"status: {outcome.status}\nresult: {outcome.result}")
        if output is not None and outcome.result is not None:
            click.echo(f"written to {output}", err=True)
    if not outcome.outcome.is_ok:  # a failed run is exit 1, as for a failed job (3 is for verification)
        raise click.ClickException(f"agent {bundle.manifest.name}: {outcome.status}")


def _input(item: str) -> tuple[str, str]:
    """``NAME=CID`` or ``NAME=PATH`` (an existing file or directory), checked before anything runs."""
    from agents.bundle import as_cid

    name, sep, value = item.partition("=")
    if not sep or not name or not value:
        raise click.UsageError(f"--input takes NAME=CID or NAME=PATH, got {item!r}")
    if name.startswith(".") or "/" in name:
        raise click.UsageError(f"--input name {name!r} must be a plain file name (no '/', not starting with '.')")
    if as_cid(value) is None and not Path(value).exists():
        raise click.UsageError(f"--input {name}={value}: neither a CID nor an existing file or directory")
    return name, value


@agent_group.command("env")
@api_options
@click.option("--local", is_flag=True, help="This machine's environment, without asking a node.")
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON.")
def agent_env(api_url: str, api_token: str | None, local: bool, as_json: bool) -> None:
    """What agents get: the python interpreter and its packages (versions), the wasm runtime.

    Asks the node at --api (GET /v1/env), or with --local describes this machine. A manifest's
    requires = ["numpy>=2"] is checked against it. Example: mycel agent env --api http://127.0.0.1:5080
    """
    env: dict[str, Any]
    if local:
        from agents.environment import agent_environment

        env = agent_environment().to_json()
    else:
        with sdk_client(api_url, api_token) as client:
            env = client.environment()
    if as_json:
        print_json(env)
        return
    python, wasm = env["python"], env["wasm"]
    click.echo(f"python: {python['interpreter']} ({len(python['packages'])} packages)")
    click.echo(f"wasm:   {wasm['runtime']} (WASI {wasm['wasi']})")
    click.echo(f"hash:   {env['hash']}")
    for name, version in python["packages"].items():
        click.echo(f"  {name}=={version}")


agent_group.add_command(agent_init)

COMMANDS = [agent_group]


@agent_group.command("sign")
@click.argument("agent")
@click.option("--key", "key_file", type=click.Path(path_type=Path), required=True,
              help="Publisher key file (Ed25519 seed as hex, created 0600 on first use).")  # fmt: skip
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Where to write the signature.")
def agent_sign(agent: str, key_file: Path, output: Path) -> None:
    """Sign AGENT (its CID) as its publisher; writes the signature as JSON, prints the publisher key.

    A policy listing that key (`mycel put --private --allow-publisher KEY`) approves the agent for
    jobs that carry the signature (SDK: ``client.run(..., publisher_signatures=[...])``).
    Example: mycel agent sign bafy... --key publisher.key -o agent.sig.json
    """
    from node.cli.common import parse_cid
    from sdk.keys import Keypair

    key = Keypair.load_or_create(key_file)
    signature = key.sign_agent(parse_cid(agent))
    output.write_text(json.dumps({"agent": agent, "publisher": key.id, "signature": signature.hex()}))
    click.echo(key.id)
