"""``mycel agent pack|run|deploy|list``: bundle an agent, run one locally in its sandbox, or
deploy it to a node and list what a node holds."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import click

from node.cli.common import (
    VerificationFailed,
    api_options,
    data_dir_option,
    open_store,
    parse_cid,
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
@click.option("--input", "inputs", multiple=True, metavar="NAME=CID", help="An input, mounted at /in/NAME.")
@click.option("--arg", "args", multiple=True, help="An argument for the agent (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@data_dir_option
def agent_run(agent: str, inputs: tuple[str, ...], args: tuple[str, ...], as_json: bool, data_dir: Path) -> None:
    """Run AGENT (an agent id, or a bundle directory) on this machine, in its sandbox.

    Prints the result CID and the signed receipt's status; exit 3 when the agent failed
    or was killed. Example: mycel agent run examples/wasm-wordcount --input docs=bafy...
    """
    from agents.bundle import open_bundle, pack
    from agents.executor import Executor
    from agents.runtime.base import RunRequest
    from agents.runtime.python import PythonRuntime
    from agents.runtime.wasm import WasmRuntime
    from node.identity import load_or_create

    named = {}
    for item in inputs:
        name, sep, cid = item.partition("=")
        if not sep or not name:
            raise click.UsageError(f"--input takes NAME=CID, got {item!r}")
        named[name] = parse_cid(cid)
    root = resolve_data_dir(data_dir)
    identity = load_or_create(root)
    with open_store(data_dir) as store:
        bundle = pack(Path(agent), store) if Path(agent).is_dir() else open_bundle(store, parse_cid(agent))
        runtimes = {"wasm": WasmRuntime(root / "wasm-cache"), "python": PythonRuntime()}
        executor = Executor(store, runtimes, identity.signing_key)  # type: ignore[arg-type]
        outcome = executor.run(RunRequest(uuid.uuid4().hex, bundle, named, args))
    if as_json:
        result = str(outcome.result) if outcome.result else None
        click.echo(json.dumps({"status": outcome.status, "outcome": outcome.outcome.to_record(), "result": result}))
    else:
        click.echo(outcome.logs.decode("utf-8", "replace"), nl=False, err=True)
        click.echo(f"status: {outcome.status}\nresult: {outcome.result}")
    if not outcome.outcome.is_ok:  # a failed run is exit 1, as for a failed job (3 is for verification)
        raise click.ClickException(f"agent {bundle.manifest.name}: {outcome.status}")


COMMANDS = [agent_group]
