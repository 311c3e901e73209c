"""Options and helpers shared by every ``mycel`` command."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DATA_DIR = "~/.mycelnet"

# Exit codes, documented in the README and in ``mycel --help``.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_VERIFY_FAILED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class VerificationFailed(click.ClickException):
    """Bytes, blocks or signatures did not check out: exit code 3, one line."""

    exit_code = EXIT_VERIFY_FAILED


class Interrupted(click.ClickException):
    """Ctrl-C: exit code 130, with one line saying what it left behind and what to do about it,
    or nothing where stopping is the normal way out (following a job's logs)."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, message: str = "") -> None:
        super().__init__(message)


def data_dir_option(func: F) -> F:
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="MYCEL_DATA_DIR",
        default=DEFAULT_DATA_DIR,
        show_default=True,
        help="Node data directory (env MYCEL_DATA_DIR).",
    )(func)


def resolve_data_dir(data_dir: Path) -> Path:
    return Path(os.path.expanduser(str(data_dir)))


def open_store(data_dir: Path) -> Any:
    from storage.blockstore import BlockStore

    return BlockStore(resolve_data_dir(data_dir) / "blocks")


def parse_cid(text: str) -> Any:
    from storage.cid import CID

    return CID.parse(text)


DEFAULT_API_URL = "http://127.0.0.1:5080"
API_URL_ENV = "MYCEL_API_URL"
API_TOKEN_ENV = "MYCEL_API_TOKEN"


_TOKEN_OPTION = click.option(
    "--token",
    "api_token",
    envvar=API_TOKEN_ENV,
    default=None,
    help=f"Bearer token of the node's API (env {API_TOKEN_ENV}).",
)


def api_options(func: F) -> F:
    """``--api`` and ``--token`` for a command that talks to a node (env MYCEL_API_URL, MYCEL_API_TOKEN)."""
    func = _TOKEN_OPTION(func)
    return click.option(
        "--api",
        "api_url",
        envvar=[API_URL_ENV, "MYCEL_API"],
        default=DEFAULT_API_URL,
        show_default=True,
        help=f"Node API URL (env {API_URL_ENV}).",
    )(func)


def store_or_api_options(func: F) -> F:
    """``--api``/``--token`` for a storage command that works on the local store unless a node is named."""
    func = _TOKEN_OPTION(func)
    return click.option(
        "--api",
        "api_url",
        envvar=API_URL_ENV,
        default=None,
        help=f"Go through this node's HTTP API instead of the local store (env {API_URL_ENV}).",
    )(func)


def sdk_client(api_url: str, api_token: str | None, wallet: Any = None) -> Any:
    """The SDK's blocking client: the CLI's one HTTP client, so both speak to nodes the same way."""
    from sdk import SyncClient

    return SyncClient(api_url, token=api_token, wallet=wallet)


def print_json(answer: Any) -> None:
    import json

    click.echo(json.dumps(answer))


_WEI_PER_ETH = 10**18
_WEI_PER_GWEI = 10**9


def format_amount(wei: int) -> str:
    """An amount of wei as a person reads it, exactly (no rounding: these are payments).

    From a micro-ether (10**12 wei) up it is shown in ETH, from one gwei up in gwei, below
    that in wei: ``21000000000000`` -> ``0.000021 ETH``, ``1500000000`` -> ``1.5 gwei``,
    ``7`` -> ``7 wei``. Scripts get raw wei from ``--json`` instead.
    """
    if not isinstance(wei, int) or isinstance(wei, bool):
        raise TypeError(f"an amount is a whole number of wei, not {type(wei).__name__}")
    sign, size = ("-", -wei) if wei < 0 else ("", wei)
    if size >= _WEI_PER_ETH // 10**6:
        scale, digits, unit = _WEI_PER_ETH, 18, "ETH"
    elif size >= _WEI_PER_GWEI:
        scale, digits, unit = _WEI_PER_GWEI, 9, "gwei"
    else:
        return f"{sign}{size} wei"
    whole, fraction = divmod(size, scale)  # integers throughout: exact for any uint256
    decimals = f"{fraction:0{digits}d}".rstrip("0")
    return f"{sign}{whole}{'.' + decimals if decimals else ''} {unit}"


_TEARDOWN = {"needed": False}


def keep_teardown() -> None:
    """Make :func:`exit_without_teardown` exit the ordinary way (a command that needs it)."""
    _TEARDOWN["needed"] = True


def exit_without_teardown(code: int) -> None:
    """End the process with ``code`` once a command has finished, skipping CPython's teardown.

    Every command closes what it opened itself (stores, files, child processes) before it
    returns; what is left is the interpreter freeing each module it loaded, which for a
    process that loaded libp2p, web3 or aiohttp is 1-3 s of CPU for nothing (the test suite
    runs hundreds of these). Output and log handlers are flushed first, so nothing is lost."""
    import contextlib
    import logging
    import sys

    if _TEARDOWN["needed"]:
        sys.exit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
