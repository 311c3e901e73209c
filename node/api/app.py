"""Routes of the node API. Handlers stay thin: the work lives in the node service.

Handlers never walk the store, hash, or touch files on the event loop: a slow disk
or a 20,000-file DAG would stall every other request and every peer's probe. That
work runs in executor threads.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from agents.bundle import open_bundle, pack
from agents.errors import ManifestError
from node.api.agents import routes as agent_routes
from node.api.dashboard import routes as dashboard_routes
from node.api.errors import METRICS_KEY, SERVICE_KEY, ApiError, error_middleware
from node.api.guards import guard_middleware
from node.api.joblist import routes as job_list_routes
from node.api.jobs import routes as job_routes
from node.api.ledger import routes as ledger_routes
from node.api.openapi import document
from node.api.ops import routes as ops_routes
from storage.blockstore import BlockStore
from storage.cid import CID
from storage.errors import StorageError
from storage.files import add_path, get_path
from storage.unixfs.data import NodeType
from storage.unixfs.exporter import iter_file, node_kind

if TYPE_CHECKING:
    from node.service import NodeService

_UPLOAD_CHUNK = 1 << 20
_MEDIA_TYPES = "send a file as application/octet-stream or a directory as application/x-tar"


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"uploads are limited to {limit} bytes (api.max_upload_bytes)")


def build_app(service: NodeService) -> web.Application:
    app = web.Application(middlewares=[error_middleware, guard_middleware, _auth_middleware], client_max_size=1 << 20)
    app[SERVICE_KEY] = service
    app[METRICS_KEY] = service.metrics
    app.add_routes(
        [
            web.get("/v1/node", get_node),
            web.get("/v1/peers", get_peers),
            web.post("/v1/blobs", post_blob),
            web.post("/v1/agents", post_agent),
            web.get("/v1/agents", get_agents),
            web.get("/v1/blobs/{cid}", get_blob),
            web.get("/v1/blobs/{cid}/providers", get_providers),
            web.get("/v1/pins", get_pins),
            web.post("/v1/pins/{cid}", post_pin),
            web.delete("/v1/pins/{cid}", delete_pin),
            web.get("/v1/openapi.json", get_openapi),
            web.get("/metrics", get_metrics),
            *agent_routes(),
            *job_routes(),
            *ledger_routes(),
            *job_list_routes(),
            *ops_routes(),
            *dashboard_routes(),
        ]
    )
    return app


@web.middleware
async def _auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    token: str = request.app[SERVICE_KEY].config.get("api", "token")
    unrouted = request.match_info.http_exception is not None  # 404/405 answer before auth
    if request.method not in ("GET", "HEAD", "OPTIONS") and token and not unrouted:
        supplied = request.headers.get("Authorization", "")
        if not hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode()):
            raise ApiError(401, "unauthorized", "this API requires 'Authorization: Bearer <token>' for writes")
    response: web.StreamResponse = await handler(request)
    return response


def _service(request: web.Request) -> NodeService:
    service: NodeService = request.app[SERVICE_KEY]
    return service


def _cid(request: web.Request) -> CID:
    return CID.parse(request.match_info["cid"])


async def get_node(request: web.Request) -> web.Response:
    return web.json_response(await _service(request).describe())


async def get_peers(request: web.Request) -> web.Response:
    service = _service(request)
    connected = set(await service.network.peers())
    return web.json_response({"peers": service.peers.snapshot(connected)})


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(document(_service(request).version))


async def get_metrics(request: web.Request) -> web.Response:
    service = _service(request)
    service.refresh_gauges(len(await service.network.peers()))
    return web.Response(text=service.metrics.render(), content_type="text/plain")


async def _receive(request: web.Request, service: NodeService, scratch: Path, types: tuple[str, ...]) -> int:
    """Stream the body to ``scratch/body`` within api.max_upload_bytes; returns its size."""
    if request.content_type not in types:
        raise ApiError(415, "unsupported_media_type", f"send the body as {' or '.join(types)}")
    limit = int(service.config.get("api", "max_upload_bytes"))
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    size = 0
    with open(scratch / "body", "wb") as out:
        async for chunk in request.content.iter_chunked(_UPLOAD_CHUNK):
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            out.write(chunk)
    return size


async def post_blob(request: web.Request) -> web.Response:
    """A file (application/octet-stream) or a directory (application/x-tar), stored and pinned."""
    service = _service(request)
    scratch = Path(tempfile.mkdtemp(prefix="upload-", dir=service.scratch_dir))
    try:
        size = await _receive(request, service, scratch, ("application/octet-stream", "application/x-tar"))
        received = scratch / "body"
        name = request.query.get("name", "upload")
        loop = asyncio.get_running_loop()
        if request.content_type == "application/x-tar":
            root = scratch / "tree"
            await loop.run_in_executor(None, _safe_untar, received, root)
            node = await loop.run_in_executor(None, lambda: add_path(service.store, root, name=name))
        else:
            node = await loop.run_in_executor(None, lambda: add_path(service.store, received, name=name))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    service.metrics.inc("bytes_uploaded_total", size)
    service.provide(node.cid)
    return web.json_response({"cid": str(node.cid), "size": size}, status=201)


async def post_agent(request: web.Request) -> web.Response:
    """An agent directory (application/x-tar), validated and packed; returns the agent id."""
    service = _service(request)
    scratch = Path(tempfile.mkdtemp(prefix="agent-", dir=service.scratch_dir))
    try:
        await _receive(request, service, scratch, ("application/x-tar",))
        root = scratch / "agent"
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, _safe_untar, scratch / "body", root)
        try:
            bundle = await loop.run_in_executor(None, pack, root, service.store)
        except ManifestError as exc:
            raise ApiError(400, "bad_agent", str(exc)) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    service.provide(bundle.agent_id)
    return web.json_response({"agent": str(bundle.agent_id), "runtime": bundle.manifest.runtime}, status=201)


def _safe_untar(archive: Path, dest: Path) -> None:
    dest.mkdir()
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise ApiError(400, "bad_tar", f"the upload is not a valid tar archive: {exc}") from None


async def get_blob(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    root = _cid(request)
    await service.ensure_local(root)
    store = service.store
    loop = asyncio.get_running_loop()
    kind = await loop.run_in_executor(None, node_kind, store.get, root)
    if kind == NodeType.DIRECTORY:
        return await _send_tar(request, service, root)
    if kind != NodeType.FILE:
        raise ApiError(400, "not_a_file", f"{root} is a UnixFS {kind.name.lower()}")
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream", "X-Content-CID": str(root)})
    await response.prepare(request)
    chunks = iter_file(store.get, root)
    while True:
        chunk = await loop.run_in_executor(None, next, chunks, None)
        if chunk is None:
            break
        await response.write(chunk)
    await response.write_eof()
    return response


async def _send_tar(request: web.Request, service: NodeService, root: CID) -> web.StreamResponse:
    loop = asyncio.get_running_loop()
    scratch = Path(tempfile.mkdtemp(prefix="download-", dir=service.scratch_dir))
    try:
        tree = scratch / str(root)
        await loop.run_in_executor(None, get_path, service.store, root, tree)
        archive = scratch / "out.tar"

        def pack() -> None:
            with tarfile.open(archive, "w") as tar:
                for path in sorted(tree.rglob("*")):
                    tar.add(path, arcname=os.path.relpath(path, tree), recursive=False)

        await loop.run_in_executor(None, pack)
        response = web.StreamResponse(headers={"Content-Type": "application/x-tar", "X-Content-CID": str(root)})
        await response.prepare(request)
        with open(archive, "rb") as stream:
            while chunk := await loop.run_in_executor(None, stream.read, _UPLOAD_CHUNK):
                await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


async def get_providers(request: web.Request) -> web.Response:
    service = _service(request)
    root = _cid(request)
    providers = await service.exchange.find_providers(root)
    if await asyncio.to_thread(service.store.has, root):
        providers.insert(0, service.identity.peer_id)
    return web.json_response({"cid": str(root), "providers": providers})


async def get_agents(request: web.Request) -> web.Response:
    """Agents stored on this node: the pinned roots that open as agent bundles."""
    agents = await asyncio.to_thread(_list_agents, _service(request).store)
    return web.json_response({"agents": sorted(agents, key=lambda a: (a["name"], a["version"]))})


def _list_agents(store: BlockStore) -> list[dict[str, str]]:
    agents = []
    for pin in store.pins():
        if pin.cid.codec != 0x71:  # bundles are dag-cbor manifests
            continue
        try:
            bundle = open_bundle(store, pin.cid)
        except (ManifestError, StorageError):
            continue
        manifest = bundle.manifest
        agents.append({"agent": str(pin.cid), "name": manifest.name, "version": manifest.version,
                       "runtime": manifest.runtime, "description": manifest.description})  # fmt: skip
    return agents


async def get_pins(request: web.Request) -> web.Response:
    pins = await asyncio.to_thread(_service(request).store.pins)
    return web.json_response({"pins": [{"cid": str(p.cid), "name": p.name, "created": p.created} for p in pins]})


async def post_pin(request: web.Request) -> web.Response:
    service = _service(request)
    root = _cid(request)
    name = request.query.get("name", "")
    if await asyncio.to_thread(service.store.missing_blocks, root):
        await service.exchange.fetch_and_pin(root, None, name)  # GC held off from the first block to the pin
    else:
        await asyncio.to_thread(service.store.pin, root, name)
    service.provide(root)
    return web.json_response({"pinned": str(root)})


async def delete_pin(request: web.Request) -> web.Response:
    root = _cid(request)
    if not await asyncio.to_thread(_service(request).store.unpin, root):
        raise ApiError(404, "not_found", f"{root} is not pinned")
    return web.json_response({"unpinned": str(root)})
