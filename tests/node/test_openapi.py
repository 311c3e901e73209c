"""The OpenAPI document: valid OpenAPI 3.1, in step with the routes the app serves, and true to
the answers: real requests against the real app in-process, each body validated against the
schema the document gives for that operation and status, errors included."""

from __future__ import annotations

import io
import json
import re
import tarfile
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from node.api.app import build_app
from node.api.openapi import document
from node.scheduler.job import MAX_ARGS
from tests.node.apinode import api_node
from tests.node.scheduler.harness import write_agent

__all__ = ["api_node"]  # the fixture, used by name

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
DOC = document("test")


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def _pointer(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    target: Any = doc
    for part in ref[2:].split("/"):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    return target


def test_the_document_is_valid_openapi_3_1() -> None:
    """Checked by structure (no OpenAPI validator is a dependency): the fields 3.1 requires,
    unique operation ids, declared path parameters, and every schema valid JSON Schema 2020-12."""
    assert DOC["openapi"] == "3.1.0" and DOC["info"]["title"] and DOC["info"]["version"] == "test"
    json.dumps(DOC)  # plain JSON all through
    for ref in _refs(DOC):
        _pointer(DOC, ref)  # every $ref resolves
    for schema in DOC["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    schemes = set(DOC["components"]["securitySchemes"])
    ids: list[str] = []
    for path, item in DOC["paths"].items():
        assert path.startswith("/") and set(item) <= METHODS, path
        wanted = set(re.findall(r"{(\w+)}", path))
        for method, operation in item.items():
            ids.append(operation["operationId"])
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == wanted, (method, path)
            for param in operation.get("parameters", []):
                assert param["in"] in {"path", "query", "header", "cookie"} and "schema" in param
                assert param["in"] != "path" or param["required"] is True
                Draft202012Validator.check_schema(param["schema"])
            for requirement in operation.get("security", []):
                assert set(requirement) <= schemes
            assert operation["responses"], (method, path)
            for status, response in operation["responses"].items():
                assert re.fullmatch(r"[1-5][0-9][0-9]|default", status) and response["description"]
                for media in response.get("content", {}).values():
                    Draft202012Validator.check_schema(media["schema"])
            for media in operation.get("requestBody", {}).get("content", {}).values():
                Draft202012Validator.check_schema(media["schema"])
    assert len(ids) == len(set(ids)), "operation ids must be unique"


def test_every_route_is_documented_and_every_documented_route_served() -> None:
    app = build_app(cast(Any, SimpleNamespace(metrics=None)))  # routes only; nothing is served
    served = {
        (route.resource.canonical, route.method.lower())
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    documented = {(path, method) for path, operations in DOC["paths"].items() for method in operations}
    assert served == documented


def test_the_job_request_schema_matches_what_the_handler_enforces() -> None:
    schema = DOC["components"]["schemas"]["JobRequest"]
    validator = _validator({"$ref": "#/components/schemas/JobRequest"})
    assert schema["properties"]["args"]["maxItems"] == MAX_ARGS
    assert validator.is_valid({"agent": "bafyx", "limits": {"wall_seconds": 5}, "redundancy": 16})
    for bad in (
        {},
        {"agent": "bafyx", "redundancy": 17},
        {"agent": "bafyx", "limits": {"wall_seconds": 0}},
        {"agent": "bafyx", "limits": {"gpu_hours": 1}},
        {"agent": "bafyx", "inputs": {"a/b": "bafyy"}},
        {"agent": "bafyx", "payment": "00"},  # a paid job names its job_id
        {"agent": "bafyx", "colour": "red"},
    ):
        assert not validator.is_valid(bad), bad


# --- contract: real answers validate against the document -------------------------------------

_REGISTRY: Registry[Any] = Registry().with_resource("urn:mycel:openapi", Resource(DOC, DRAFT202012))


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    rooted = json.loads(json.dumps(schema).replace('"#/components/', '"urn:mycel:openapi#/components/'))
    return Draft202012Validator(rooted, registry=_REGISTRY)


def _operation(path: str, method: str) -> dict[str, Any]:
    operation: dict[str, Any] = DOC["paths"][path][method]
    return operation


async def check(response: ClientResponse, path: str, method: str | None = None) -> Any:
    """Validate ``response`` against the document's entry for (path template, method, status)."""
    operation = _operation(path, (method or response.method).lower())
    responses = operation["responses"]
    status = str(response.status)
    assert status in responses, f"{response.method} {path} answered {status}, undocumented: {await response.text()}"
    content = responses[status].get("content", {})
    media = response.content_type
    assert media in content or "*/*" in content, f"{path} {status}: {media} not in {list(content)}"
    raw = await response.read()
    if media != "application/json":
        return raw
    body = json.loads(raw)
    errors = sorted(_validator(content[media]["schema"]).iter_errors(body), key=str)
    assert not errors, f"{response.method} {path} {status}: {errors[0].message} at {list(errors[0].path)}"
    return body


def _tar(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


JSON = {"Content-Type": "application/json"}


@pytest.mark.timeout(60)
async def test_real_answers_validate_against_the_document(api_node: Any, tmp_path: Any) -> None:
    client: TestClient[Any, Any]
    client, node, cluster = api_node
    seen: set[tuple[str, str, int]] = set()

    async def call(method: str, url: str, template: str, **kwargs: Any) -> Any:
        response = await client.request(method, url, **kwargs)
        seen.add((template, method, response.status))
        return await check(response, template, method)

    for path in ("/v1/node", "/v1/peers", "/v1/pins", "/v1/agents", "/v1/storage", "/health", "/ready", "/metrics"):
        await call("GET", path, path)
    await call("GET", "/v1/openapi.json", "/v1/openapi.json")
    await call("GET", "/", "/")
    await call("GET", "/docs", "/docs")
    await call("GET", "/docs/docs.js", "/docs/{asset}")
    await call("GET", "/docs/nope.js", "/docs/{asset}")  # 404 in the envelope
    await call("GET", "/v1/ledger", "/v1/ledger")  # 404 settlement_off
    await call("GET", "/v1/ledger/claims", "/v1/ledger/claims")

    # blobs and pins
    stored = await call(
        "POST", "/v1/blobs?name=x", "/v1/blobs", data=b"hello", headers={"Content-Type": "application/octet-stream"}
    )
    cid = stored["cid"]
    await call("POST", "/v1/blobs", "/v1/blobs", data=b"hello", headers={"Content-Type": "text/plain"})  # 415
    assert await call("GET", f"/v1/blobs/{cid}", "/v1/blobs/{cid}") == b"hello"
    await call("GET", "/v1/blobs/notacid", "/v1/blobs/{cid}")  # 400
    missing = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    await call("GET", f"/v1/blobs/{missing}", "/v1/blobs/{cid}")  # 404: no peer has it
    await call("GET", f"/v1/blobs/{cid}/providers", "/v1/blobs/{cid}/providers")
    await call("POST", f"/v1/pins/{cid}", "/v1/pins/{cid}", headers=JSON)
    await call("DELETE", f"/v1/pins/{cid}", "/v1/pins/{cid}")
    await call("DELETE", f"/v1/pins/{cid}", "/v1/pins/{cid}")  # 404: not pinned now
    agent_tar = _tar(
        {"main.py": "print(1)\n", "mycel-agent.toml": (write_agent(tmp_path / "a") / "mycel-agent.toml").read_text()}
    )
    await call("POST", "/v1/agents", "/v1/agents", data=agent_tar, headers={"Content-Type": "application/x-tar"})
    await call("POST", "/v1/agents", "/v1/agents", data=b"not a tar", headers={"Content-Type": "application/x-tar"})
    await call("GET", "/v1/agents", "/v1/agents")

    # jobs: a real one, run by the harness's executor, then every read of it
    agent = str(cluster.agent)
    accepted = await call("POST", "/v1/jobs", "/v1/jobs", json={"agent": agent, "args": ["0"]})
    job_id = accepted["job_id"]
    await cluster.final(job_id)
    for suffix, template in (("", ""), ("/placement", "/placement"), ("/logs", "/logs"), ("/receipt", "/receipt")):
        await call("GET", f"/v1/jobs/{job_id}{suffix}", "/v1/jobs/{id}" + template)
    await call("GET", f"/v1/jobs/{job_id}/events", "/v1/jobs/{id}/events")  # the job ended: history, then the end
    await call("GET", "/v1/jobs?limit=2", "/v1/jobs")
    await call("GET", "/v1/reputation", "/v1/reputation")
    await call("GET", "/v1/reputation?peer=" + "x" * 200, "/v1/reputation")  # 400 bad_query
    await call("GET", "/v1/jobs?limit=0", "/v1/jobs")  # 400 bad_limit
    await call("DELETE", f"/v1/jobs/{job_id}", "/v1/jobs/{id}")  # done stays done
    await call("POST", "/v1/jobs", "/v1/jobs", json={"agent": agent, "job_id": job_id})  # 409
    await call("POST", "/v1/jobs", "/v1/jobs", json={"agent": agent, "colour": "red"})  # 400
    await call("POST", "/v1/jobs", "/v1/jobs", data=b"{", headers=JSON)  # 400 bad_json
    await call("POST", "/v1/jobs", "/v1/jobs", data=b"[" * 100 + b"]" * 100, headers=JSON)  # 400 depth
    await call("POST", "/v1/jobs", "/v1/jobs", data=b'{"agent": "x"}', headers={"Content-Type": "text/plain"})
    await call("POST", f"/v1/jobs/{job_id}/payment", "/v1/jobs/{id}/payment", json={"payments": "x"})  # 400
    await call("GET", f"/v1/jobs/{'0' * 32}", "/v1/jobs/{id}")  # 404
    await call("GET", "/v1/node", "/v1/node", headers={"Host": "evil.example"})  # 403 (DNS rebinding guard)
    await call("POST", "/v1/jobs", "/v1/jobs", json={"agent": agent}, headers={"Origin": "http://evil.example"})

    big = {"agent": agent, "args": ["x" * 4096] * 300}  # over the 1 MiB JSON bound
    await call("POST", "/v1/jobs", "/v1/jobs", data=json.dumps(big).encode(), headers=JSON)  # 413

    with_token = node.config.get
    node.config.get = lambda section, key: "s3cret" if (section, key) == ("api", "token") else with_token(section, key)
    await call("POST", "/v1/jobs", "/v1/jobs", json={"agent": agent})  # 401: no token
    await call("GET", "/v1/jobs?limit=1", "/v1/jobs")  # 401: job reads are not public by default
    await call("GET", "/health", "/health")  # public
    node.config.get = with_token

    job_service, node.job_service = node.job_service, None  # a node still starting
    await call("GET", "/ready", "/ready")  # 503, naming the jobs check
    await call("GET", f"/v1/jobs/{job_id}", "/v1/jobs/{id}")  # 503 not_ready
    node.job_service = job_service

    statuses = {status for _, _, status in seen}
    assert {200, 201, 400, 401, 403, 404, 409, 413, 415, 503} <= statuses, statuses
    assert ("/v1/jobs", "POST", 201) in seen and ("/v1/jobs", "POST", 409) in seen
