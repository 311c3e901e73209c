"""The node's HTTP API (aiohttp) under /v1/, documented at /v1/openapi.json."""
