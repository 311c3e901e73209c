"""The architecture's rules, checked on the source: they hold because a test fails otherwise."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("storage", "agents", "contracts", "node", "sdk")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_only_the_bridge_imports_trio() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for package in (*PACKAGES, "bench")
        for path in _sources(package)
        if "trio" in _imports(path) and path != ROOT / "node" / "p2p" / "bridge.py"
    ]
    assert offenders == []


def test_dependencies_point_one_way() -> None:
    forbidden = {
        "storage": {"agents", "node", "contracts", "sdk", "aiohttp", "libp2p", "web3"},
        "agents": {"node", "contracts", "sdk", "aiohttp", "libp2p", "web3"},
        "contracts": {"node", "agents", "sdk", "aiohttp", "libp2p"},
        "sdk": {"node", "libp2p"},  # a client library: it talks to nodes over HTTP only
    }
    for package, banned in forbidden.items():
        for path in _sources(package):
            assert not (_imports(path) & banned), f"{path.relative_to(ROOT)} imports {_imports(path) & banned}"


# What `pip install mycelnet` (the SDK alone) does not install: the node's and the chain's stacks.
SDK_FORBIDDEN = {"lmdb", "libp2p", "multiaddr", "trio", "wasmtime", "onnxruntime", "onnx", "numpy", "web3",
                 "eth_account", "eth_utils", "vyper", "eth_tester"}  # fmt: skip


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _load_time_imports(tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(module, names) of every import run when the module loads: its top level, including
    try/if blocks, but not ``if TYPE_CHECKING:`` nor function or class bodies run later."""
    found: list[tuple[str, list[str]]] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.If) and not _is_type_checking(node.test):
            pending.extend([*node.body, *node.orelse])
        elif isinstance(node, ast.Try):
            pending.extend([*node.body, *node.orelse, *node.finalbody])
            for handler in node.handlers:
                pending.extend(handler.body)
        elif isinstance(node, ast.With):
            pending.extend(node.body)
    return found


def _source_of(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _loaded_with(start: str) -> dict[str, str]:
    """Every module importing ``start`` loads (project modules followed through, package
    ``__init__`` files included), mapped to the project module that imports it."""
    seen: dict[str, str] = {}
    todo = [(start, start)]
    while todo:
        module, importer = todo.pop()
        parts = module.split(".")
        for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__, then a/b/c
            name = ".".join(parts[:depth])
            if name in seen:
                continue
            seen[name] = importer
            source = _source_of(name)
            if source is None:
                continue
            for target, names in _load_time_imports(ast.parse(source.read_text(), filename=str(source))):
                todo.append((target, name))
                todo.extend((f"{target}.{n}", name) for n in names if _source_of(f"{target}.{n}"))
    return seen


def test_the_sdk_loads_without_the_node_or_chain_stack() -> None:
    """``import sdk`` and the ``mycel`` entry point load nothing the SDK-only install lacks
    (tests/sdk/test_sdk_only.py proves it in a live interpreter too)."""
    for start in ("sdk", "node.cli.main"):
        loaded = _loaded_with(start)
        bad = {name: loaded[name] for name in loaded if name.split(".")[0] in SDK_FORBIDDEN}
        assert bad == {}, f"{start} loads {bad} (module: imported by)"
    assert "storage.cid" in _loaded_with("sdk")  # the walk does follow project imports
