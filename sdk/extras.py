"""Which optional part of the install a module comes from, and a check before using it.

The base install (``pip install mycelnet``) is the SDK and the client commands: content and
receipt verification, jobs and agents over a node's HTTP API. ``mycelnet[pay]`` adds the chain
stack (web3, eth-account) for paid jobs and settlement checks; ``mycelnet[node]`` adds what a
node runs (libp2p, LMDB, the agent runtimes, the contract compiler). A call that reaches for a
missing part raises :class:`sdk.errors.MissingExtraError` naming the extra, not an ImportError.
"""

from __future__ import annotations

import importlib

from sdk.errors import MissingExtraError

# top-level modules of each extra's dependencies (directly imported by this project's code)
PAY_MODULES = frozenset({"web3", "eth_account", "eth_utils", "eth_abi", "eth_keys", "eth_typing", "hexbytes"})
NODE_MODULES = frozenset({"libp2p", "multiaddr", "trio", "lmdb", "wasmtime", "onnxruntime", "onnx", "numpy"})
NODE_MODULES |= {"sklearn", "tokenizers", "vyper", "eth_tester", "coincurve"}


def extra_for(module: str | None) -> str | None:
    """The extra that installs ``module`` (a dotted name is judged by its top level), if any."""
    top = (module or "").split(".")[0]
    if top in PAY_MODULES:
        return "pay"
    if top in NODE_MODULES:
        return "node"
    return None


def require_pay(purpose: str) -> None:
    """Raise MissingExtraError unless the chain stack (``mycelnet[pay]``) imports."""
    for module in ("eth_account", "web3"):
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingExtraError("pay", module, purpose) from None
