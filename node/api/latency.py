"""Times every API request into the node's ``mycel_http_request_seconds`` histogram.

It runs outermost, so the time and status it records are what the client got, error
envelopes included. The label is the route's template (``/v1/jobs/{id}``), never the raw
path: a client choosing URLs must not be able to grow the metric's label set.
"""

from __future__ import annotations

import time

from aiohttp import web

from node.api.errors import METRICS_KEY, Handler


def route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    if request.match_info.http_exception is not None or resource is None:
        return "unmatched"
    return resource.canonical


@web.middleware
async def latency_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:  # what error_middleware lets through (redirects, 304)
        status = exc.status
        raise
    finally:
        metrics = request.app.get(METRICS_KEY)
        if metrics is not None:
            metrics.observe_request(route_label(request), request.method, status, time.perf_counter() - started)
