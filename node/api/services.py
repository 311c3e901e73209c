"""The node behind a request, and the parts of it a route may ask for only once it has started.

Every route reaches the NodeService the app holds under ``SERVICE_KEY`` through :func:`node_of`
(typed once, here); a part the node makes during start-up (the job service, the trigger
service) through :func:`started`, which answers 503 ``not_ready`` until it exists, so every
route says the same thing while the node starts and a client knows to retry, never a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from aiohttp import web

from node.api.errors import SERVICE_KEY, ApiError

if TYPE_CHECKING:
    from node.scheduler.dispatcher import JobService
    from node.service import NodeService
    from node.triggers.service import TriggerService

T = TypeVar("T")

NOT_READY = "the node is still starting; retry in a moment"


def node_of(request: web.Request) -> NodeService:
    """The node serving ``request``."""
    service: NodeService = request.app[SERVICE_KEY]
    return service


def started(request: web.Request, part: Callable[[NodeService], T | None]) -> T:
    """``part`` of the node serving ``request``; 503 ``not_ready`` while it is None (starting)."""
    value = part(node_of(request))
    if value is None:
        raise ApiError(503, "not_ready", NOT_READY)
    return value


def job_service(request: web.Request) -> JobService:
    """The job service, or 503 while the node starts."""
    return started(request, lambda node: node.job_service)


def trigger_service(request: web.Request) -> TriggerService:
    """The trigger service, or 503 while the node starts."""
    return started(request, lambda node: node.triggers)
