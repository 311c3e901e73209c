"""Run a script or module as it would run in an SDK-only install: the node's and the chain's
dependencies cannot be imported (``python tests/sdk/sdk_only.py -m node.cli.main ...`` or
``python tests/sdk/sdk_only.py SCRIPT ARGS``). A test's proof of the import graph, not of pip."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import runpy
import sys
from collections.abc import Sequence
from types import ModuleType

# what `pip install mycelnet` must not need: the node's stack (mycelnet[node]) and the chain's (mycelnet[pay])
NODE_STACK = {"lmdb", "libp2p", "multiaddr", "trio", "wasmtime", "onnxruntime", "onnx", "numpy", "sklearn"}
CHAIN_STACK = {"web3", "vyper", "eth_tester", "eth_account", "eth_utils", "eth_abi", "eth_keys", "coincurve"}
BLOCKED = frozenset(NODE_STACK | CHAIN_STACK | {"tokenizers"})


class Blocker(importlib.abc.MetaPathFinder):
    """Makes every BLOCKED top-level package (and its submodules) unimportable."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {fullname!r} (blocked: not in the SDK-only install)",
                                      name=fullname)  # fmt: skip
        return None


def main() -> None:
    leaked = sorted(name for name in sys.modules if name.split(".")[0] in BLOCKED)
    if leaked:
        raise SystemExit(f"already imported before the blocker: {leaked}")
    sys.meta_path.insert(0, Blocker())
    args = sys.argv[1:]
    if args[:1] == ["-m"]:
        sys.argv = [args[1], *args[2:]]
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = args
        runpy.run_path(args[0], run_name="__main__")


if __name__ == "__main__":
    main()
