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
