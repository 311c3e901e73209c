"""The OpenAPI document names every route the API serves, with the same methods."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from node.api.app import build_app
from node.api.openapi import document


def test_every_route_is_documented() -> None:
    app = build_app(cast(Any, SimpleNamespace(metrics=None)))  # routes only; nothing is served
    served = {
        (route.resource.canonical, route.method.lower())
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    paths = document("test")["paths"]
    documented = {(path, method) for path, operations in paths.items() for method in operations}
    assert served == documented


def test_every_path_parameter_is_declared() -> None:
    import re

    for path, operations in document("test")["paths"].items():
        wanted = set(re.findall(r"{(\w+)}", path))
        for method, operation in operations.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == wanted, (method, path)
