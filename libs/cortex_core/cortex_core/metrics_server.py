"""Each service's Prometheus endpoint on its own port."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from cortex_core.config import ConfigError, parse_host_port


def serve_metrics(listen: str, registry: CollectorRegistry, key: str) -> Any | None:
    """Serve `registry` on `listen` (HOST:PORT; empty disables). Returns the server."""
    if not listen:
        return None
    host, port = parse_host_port(listen, key, "settings")
    try:
        server, _thread = start_http_server(port, host, registry=registry)
    except OSError as error:
        raise ConfigError(f"{key}: cannot listen on {listen}: {error.strerror}") from None
    return server
