"""Routes of the node API. Handlers stay thin: the work lives in the node service.

Handlers never walk the store, hash, or touch files on the event loop: a slow disk
or a 20,000-file DAG would stall every other request and every peer's probe. That
work runs in executor threads.
"""

from __future__ import annotations

import asyncio
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from agents.bundle import open_bundle, pack
from agents.errors import ManifestError
from node.api.agents import routes as agent_routes
from node.api.content import send_content
from node.api.dashboard import routes as dashboard_routes
from node.api.docs import routes as docs_routes
from node.api.errors import METRICS_KEY, SERVICE_KEY, ApiError, error_middleware
from node.api.fetching import FETCHES_KEY, RemoteFetches
from node.api.gateway import STREAMS_KEY
from node.api.gateway import routes as gateway_routes
from node.api.guards import check_remote_fetch, guard_middleware
from node.api.joblist import routes as job_list_routes
from node.api.jobs import routes as job_routes
from node.api.latency import latency_middleware
from node.api.ledger import routes as ledger_routes
from node.api.nodeinfo import routes as node_info_routes
from node.api.openapi import document
from node.api.ops import routes as ops_routes
from node.api.privacy import private_owner, refuse_private, stored
from node.api.privacy import routes as privacy_routes
from node.api.reputation import routes as reputation_routes
from node.api.services import node_of
from node.api.streams import routes as stream_routes
from node.api.triggers import routes as trigger_routes
from node.metrics import CONTENT_TYPE
from storage.blockstore import BlockStore
from storage.cid import CID
from storage.errors import StorageError
from storage.files import add_path

if TYPE_CHECKING:
    from node.service import NodeService

_UPLOAD_CHUNK = 1 << 20
_MEDIA_TYPES = "send a file as application/octet-stream or a directory as application/x-tar"


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"uploads are limited to {limit} bytes (api.max_upload_bytes)")


def build_app(service: NodeService) -> web.Application:
    app = web.Application(middlewares=[latency_middleware, error_middleware, guard_middleware], client_max_size=1 << 20)
    app[SERVICE_KEY] = service
    app[METRICS_KEY] = service.metrics
    app[FETCHES_KEY] = RemoteFetches(service)
    app[STREAMS_KEY] = [0]  # CAR streams running (node/api/gateway.py bounds them)
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
            *reputation_routes(),
            *ops_routes(),
            *stream_routes(),
            *trigger_routes(),
            *node_info_routes(),
            *privacy_routes(),
            *gateway_routes(),
            *dashboard_routes(),
            *docs_routes(),
        ]
    )
    return app


def _cid(request: web.Request) -> CID:
    return CID.parse(request.match_info["cid"])


async def get_node(request: web.Request) -> web.Response:
    return web.json_response(await node_of(request).describe())


async def get_peers(request: web.Request) -> web.Response:
    service = node_of(request)
    connected = set(await service.network.peers())
    return web.json_response({"peers": service.peers.snapshot(connected)})


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(document(node_of(request).version))


async def get_metrics(request: web.Request) -> web.Response:
    service = node_of(request)
    service.refresh_gauges(len(await service.network.peers()))
    return web.Response(body=service.metrics.render(), headers={"Content-Type": CONTENT_TYPE})


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
    service = node_of(request)
    owner = private_owner(request)
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
    await stored(service, node.cid, owner)
    return web.json_response({"cid": str(node.cid), "size": size}, status=201)


async def post_agent(request: web.Request) -> web.Response:
    """An agent directory (application/x-tar), validated and packed; returns the agent id."""
    service = node_of(request)
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
    """Content, verified; fetched from peers first when not all of it is here (guards decide who may)."""
    service = node_of(request)
    root = _cid(request)
    await refuse_private(service, root)
    if await asyncio.to_thread(service.store.missing_blocks, root):  # includes the root itself when absent
        check_remote_fetch(request)
        await request.app[FETCHES_KEY].for_read(root)
        service.provide(root)
    return await send_content(request, service.store, root, service.privacy.is_private)


async def get_providers(request: web.Request) -> web.Response:
    service = node_of(request)
    root = _cid(request)
    await refuse_private(service, root)
    providers = await service.exchange.find_providers(root)
    if await asyncio.to_thread(service.store.has, root):
        providers.insert(0, service.identity.peer_id)
    return web.json_response({"cid": str(root), "providers": providers})


async def get_agents(request: web.Request) -> web.Response:
    """Agents stored on this node: the pinned roots that open as agent bundles."""
    agents = await asyncio.to_thread(_list_agents, node_of(request).store)
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
    pins = await asyncio.to_thread(node_of(request).store.pins)
    listed = [{"cid": str(p.cid), "name": p.name, "created": p.created, "expires": p.expires} for p in pins]
    return web.json_response({"pins": listed})  # expires: null for permanent pins, else Unix seconds


async def post_pin(request: web.Request) -> web.Response:
    service = node_of(request)
    root = _cid(request)
    name = request.query.get("name", "")
    if await asyncio.to_thread(service.store.missing_blocks, root):
        await request.app[FETCHES_KEY].for_pin(root, name)  # GC held off from the first block to the pin
    else:
        await asyncio.to_thread(service.store.pin, root, name)
    service.provide(root)
    return web.json_response({"pinned": str(root)})


async def delete_pin(request: web.Request) -> web.Response:
    root = _cid(request)
    if not await asyncio.to_thread(node_of(request).store.unpin, root):
        raise ApiError(404, "not_found", f"{root} is not pinned")
    return web.json_response({"unpinned": str(root)})
