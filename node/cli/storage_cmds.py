"""Local store commands: ``cid``, ``put``, ``get``, ``pin``, ``gc``, ``car``, ``verify``, ``store``."""

from __future__ import annotations

import datetime
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from node.cli.common import (
    Interrupted,
    VerificationFailed,
    data_dir_option,
    open_store,
    parse_cid,
    resolve_data_dir,
    sdk_client,
    store_or_api_options,
)
from node.cli.data_cmds import owner_key, policy_terms, private_options


@contextmanager
def _progress(label: str, total: int | None) -> Iterator[Any]:
    """A rich progress bar on a terminal for big jobs; silent otherwise."""
    if total is None or total < (64 << 20) or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


@contextmanager
def _spinner(label: str) -> Iterator[None]:
    """A rich spinner on a terminal while a long operation runs; silent otherwise."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(label):
        yield


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


@click.command("cid")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--raw", is_flag=True, help="CID of the file as one raw block (like `ipfs block put`).")
@click.option("--cid-version", type=click.Choice(["0", "1"]), default="1", show_default=True)
@click.option("-H", "--hidden", is_flag=True, help="Include hidden files (as `ipfs add -r --hidden`).")
def cid_cmd(path: Path, raw: bool, cid_version: str, hidden: bool) -> None:
    """Print the CID of a file or directory, as `ipfs add --cid-version=1` would.

    Nothing is stored. Example: mycel cid ./dataset/
    """
    from storage.cid import CID
    from storage.unixfs.importer import ImportOptions, NullSink, import_path

    if raw:
        if not path.is_file():
            raise click.UsageError("--raw takes a single file")
        import hashlib

        digest = hashlib.sha256()
        with open(path, "rb") as stream:
            while block := stream.read(1 << 20):
                digest.update(block)
        click.echo(CID.from_digest(0x55, digest.digest()))
        return
    options = ImportOptions(cid_version=int(cid_version), include_hidden=hidden)
    click.echo(import_path(path, NullSink(), options).cid)


@click.command("put")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--pin/--no-pin", default=True, show_default=True, help="Pin the root so GC keeps it.")
@click.option("-H", "--hidden", is_flag=True, help="Include hidden files.")
@click.option("--json", "as_json", is_flag=True, help='Print {"cid", "size"} as JSON.')
@private_options
@data_dir_option
@store_or_api_options
def put_cmd(path: Path, pin: bool, hidden: bool, as_json: bool, data_dir: Path, api_url: str | None,
            api_token: str | None, private: bool, policy_file: Path | None, key_file: Path | None,
            **terms: Any) -> None:  # fmt: skip
    """Import a file or directory into the local store (or a node's, with --api) and print its root CID.

    Through --api the node's CID is checked against the one computed here (exit 3 if it differs).
    With --private (needs --api) the node keeps it as a private dataset under a policy signed here.
    Example: mycel put ./telemetry.csv
    """
    size = _tree_size(path)
    if private and api_url is None:
        raise click.UsageError("--private stores through a node: give --api")
    if api_url is not None:
        if hidden or not pin:
            raise click.UsageError("--hidden and --no-pin apply to the local store, not to --api")
        policy = policy_terms(policy_file, **terms) if private else None
        key = owner_key(key_file) if private else None
        try:
            with sdk_client(api_url, api_token) as client, _spinner(f"uploading {path.name} to {api_url}"):
                cid = client.put(path, policy, key)
        except KeyboardInterrupt:
            # the node imports an upload only once it holds all of it, and drops a partial one
            raise Interrupted(f"interrupted: the upload of {path} to {api_url} stopped; the node drops an upload "
                              "it did not receive whole (one it did is stored and pinned: put it again for its CID)"
                              ) from None  # fmt: skip
        click.echo(json.dumps({"cid": str(cid), "size": size}) if as_json else cid)
        return
    from storage.files import add_path
    from storage.unixfs.importer import ImportOptions

    with open_store(data_dir) as store:
        before = store.stats().bytes
        try:
            with _progress(f"importing {path.name}", size) as progress:
                node = add_path(store, path, pin=pin, options=ImportOptions(include_hidden=hidden), progress=progress)
        except KeyboardInterrupt:
            raise Interrupted(_left_by_interrupted_import(path, store.stats().bytes - before)) from None
    click.echo(json.dumps({"cid": str(node.cid), "size": size}) if as_json else node.cid)


def _left_by_interrupted_import(path: Path, left: int) -> str:
    """What an import stopped by Ctrl-C left: blocks it committed, which no pin holds yet.

    They are not deleted here: GC is the one sweep that knows which unpinned blocks nothing
    else (another import, a node sharing the store) still needs.
    """
    if left <= 0:
        return f"interrupted: nothing of {path} was stored"
    return (f"interrupted: {left / (1 << 20):.0f} MiB of {path} stay in the store as unpinned blocks; "
            "`mycel gc` reclaims them")  # fmt: skip


@click.command("get")
@click.argument("cid")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Where to write (default: the CID).")
@data_dir_option
@store_or_api_options
def get_cmd(cid: str, output: Path | None, data_dir: Path, api_url: str | None, api_token: str | None) -> None:
    """Write a stored file or directory to disk, verifying every block (from a node with --api).

    Through --api the download is re-hashed before it appears at OUTPUT (exit 3 if it differs;
    2 if OUTPUT already holds files). Example: mycel get bafy... -o result/
    """
    root = parse_cid(cid)
    target = output or Path(str(root))
    if api_url is not None:
        with sdk_client(api_url, api_token) as client, _spinner(f"downloading {root} (re-hashed before it appears)"):
            client.get(root, target)
        return
    from storage.files import get_path

    with open_store(data_dir) as store, _spinner(f"writing {root} (every block verified)"):
        get_path(store, root, target)


@click.command("cat")
@click.argument("cid")
@data_dir_option
@store_or_api_options
def cat_cmd(cid: str, data_dir: Path, api_url: str | None, api_token: str | None) -> None:
    """Write a stored file's bytes to stdout, verified (from a node with --api).

    A directory is refused (exit 2): use `mycel get`. Example: mycel cat bafk... --api http://127.0.0.1:5080
    """
    root = parse_cid(cid)
    out = sys.stdout.buffer
    if api_url is not None:
        with sdk_client(api_url, api_token) as client:
            out.write(client.cat(root))
        return
    from storage.files import cat
    from storage.unixfs.data import NodeType
    from storage.unixfs.exporter import node_kind

    with open_store(data_dir) as store:
        if node_kind(store.get, root) != NodeType.FILE:
            raise click.UsageError(f"{root} is a directory; use mycel get {root} -o PATH")
        for chunk in cat(store, root):
            out.write(chunk)


@click.command("verify")
@click.argument("cid")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("-H", "--hidden", is_flag=True, help="Include hidden files, if the CID was made with them.")
def verify_cmd(cid: str, path: Path, hidden: bool) -> None:
    """Check that a file or directory hashes to CID (offline; exit 0 on match, 3 if not).

    Example: mycel verify bafy... ./result
    """
    from storage.cid import DAG_PB, RAW
    from storage.unixfs.importer import ImportOptions, NullSink, import_path

    expected = parse_cid(cid)
    if expected.codec not in (RAW, DAG_PB):
        raise click.UsageError(f"{expected} is a {expected.codec_name} CID; only UnixFS (raw, dag-pb) can be checked")
    options = ImportOptions(cid_version=expected.version, include_hidden=hidden)
    actual = import_path(path, NullSink(), options).cid
    if actual != expected:
        raise VerificationFailed(f"mismatch: {path} hashes to {actual}, not {expected}")
    click.echo(f"ok: {path} matches {expected}")


@click.group("pin")
def pin_group() -> None:
    """Keep DAGs from garbage collection."""


@pin_group.command("add")
@click.argument("cid")
@click.option("--name", default="", help="A label shown by `pin ls`.")
@data_dir_option
def pin_add(cid: str, name: str, data_dir: Path) -> None:
    """Pin a DAG recursively (every block must be present). Example: mycel pin add bafy..."""
    root = parse_cid(cid)
    with open_store(data_dir) as store:
        store.pin(root, name)
    click.echo(f"pinned {root}")


@pin_group.command("rm")
@click.argument("cid")
@data_dir_option
def pin_rm(cid: str, data_dir: Path) -> None:
    """Unpin a DAG; its blocks go at the next `mycel gc`. Example: mycel pin rm bafy..."""
    root = parse_cid(cid)
    with open_store(data_dir) as store:
        if not store.unpin(root):
            raise click.ClickException(f"{root} is not pinned")
    click.echo(f"unpinned {root}")


@pin_group.command("ls")
@data_dir_option
def pin_ls(data_dir: Path) -> None:
    """List pinned roots: CID, kind, expiry, name. Example: mycel pin ls

    Pins this node made for a remote peer (a job's inputs and result) show when they
    expire and for whom; the others are permanent.
    """
    with open_store(data_dir) as store:
        for pin in store.pins():
            click.echo(f"{pin.cid}\trecursive\t{_expiry(pin.expires, pin.owner)}\t{pin.name}")


def _expiry(expires: int | None, owner: str) -> str:
    if expires is None:
        return "permanent"
    when = datetime.datetime.fromtimestamp(expires, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"expires {when} (for {owner})"


@click.command("gc")
@data_dir_option
def gc_cmd(data_dir: Path) -> None:
    """Drop expired remote pins, then delete every block no pin reaches. Example: mycel gc"""
    from node.privacy.gc import prune_after_gc

    with open_store(data_dir) as store:
        result = store.gc(then=prune_after_gc(resolve_data_dir(data_dir), store))
    expired = f", {result.expired_pins} expired remote pin(s) dropped" if result.expired_pins else ""
    click.echo(
        f"removed {result.removed_blocks} blocks ({result.freed_bytes} bytes), kept {result.kept_blocks}{expired}"
    )


@click.group("car")
def car_group() -> None:
    """Move DAGs in and out as CAR v1 archives (compatible with `ipfs dag export/import`)."""


@car_group.command("export")
@click.argument("cid")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True)
@data_dir_option
def car_export(cid: str, output: Path, data_dir: Path) -> None:
    """Write the DAG under CID to a CAR file. Example: mycel car export bafy... -o data.car"""
    from storage.car import export_car

    root = parse_cid(cid)
    partial = output.with_name(output.name + ".partial")
    with open_store(data_dir) as store:
        try:
            with open(partial, "wb") as out:
                count = export_car(store, root, out)
            os.replace(partial, output)
        finally:
            partial.unlink(missing_ok=True)
    click.echo(f"exported {count} blocks of {root} to {output}")


@car_group.command("import")
@click.argument("car_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--pin/--no-pin", default=True, show_default=True, help="Pin the roots once complete.")
@data_dir_option
def car_import(car_file: Path, pin: bool, data_dir: Path) -> None:
    """Import a CAR file, verifying every block. Example: mycel car import data.car"""
    from storage.car import import_car

    with open_store(data_dir) as store, open(car_file, "rb") as stream:
        result = import_car(store, stream, pin_roots=pin)
    for root in result.roots:
        state = "pinned" if root in result.pinned else "not pinned (incomplete)" if pin else "not pinned"
        click.echo(f"{root}\t{state}")
    click.echo(f"imported {result.blocks} blocks ({result.added_blocks} new)")


@click.group("store")
def store_group() -> None:
    """Inspect and check the local block store."""


@store_group.command("verify")
@data_dir_option
def store_verify(data_dir: Path) -> None:
    """Re-hash every block and check every pin is complete (exit 3 on any problem).

    Example: mycel store verify
    """
    problems = 0
    with open_store(data_dir) as store:
        for cid, problem in store.verify_all():
            problems += 1
            click.echo(f"corrupt: {cid}: {problem}", err=True)
        for pin in store.pins():
            for missing in store.missing_blocks(pin.cid):
                problems += 1
                click.echo(f"incomplete pin: {pin.cid} lacks {missing}", err=True)
        stats = store.stats()
    if problems:
        raise VerificationFailed(f"{problems} problem(s) in {stats.blocks} blocks")
    click.echo(f"ok: {stats.blocks} blocks, {stats.bytes} bytes, {stats.pins} pins verified")


@store_group.command("stat")
@data_dir_option
def store_stat(data_dir: Path) -> None:
    """Show block count, bytes, pins and map size. Example: mycel store stat"""
    with open_store(data_dir) as store:
        stats = store.stats()
    click.echo(f"blocks: {stats.blocks}\nbytes: {stats.bytes}\npins: {stats.pins}\nmap size: {stats.map_size}")


COMMANDS = [cid_cmd, put_cmd, get_cmd, cat_cmd, verify_cmd, pin_group, gc_cmd, car_group, store_group]
