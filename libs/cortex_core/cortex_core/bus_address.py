"""Where the bus is: the URL a client connects to, and where that URL came from (pure).

With `[nats] url` empty, `cortex up` and `cortex nats` start an embedded nats-server on
`embedded_host:embedded_port`; a service run alone and every operator command read the
same settings, so they connect to that address. Port -1 (any free port) leaves no way to
know it: then the old default stands, and the words say so.
"""

from __future__ import annotations

from collections.abc import Mapping

from cortex_core.config import NatsSettings

DEFAULT_URL = "nats://127.0.0.1:4222"
URL_VARIABLE = "CORTEX_NATS_URL"
_WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")


def client_url(host: str, port: int) -> str:
    """The URL a client on this host uses for a server listening on `host:port`."""
    if host in _WILDCARD_HOSTS:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return f"nats://{host}:{port}"


def bus_url(settings: NatsSettings) -> str:
    """`[nats] url` (comma-separated members), else the embedded server's address."""
    if settings.url:
        return settings.url
    if settings.embedded_port < 0:
        return DEFAULT_URL
    return client_url(settings.embedded_host, settings.embedded_port)


def url_origin(settings: NatsSettings, config: str | None, env: Mapping[str, str]) -> str:
    """Where bus_url's answer came from and how to point it elsewhere, in words."""
    if env.get(URL_VARIABLE):
        return f"from {URL_VARIABLE}"
    where = f"in {config}" if config else "(defaults: no --config given)"
    if settings.url:
        return f"from [nats] url {where}"
    how = f"set [nats] url or {URL_VARIABLE} to name the bus"
    if settings.embedded_port < 0:
        return (
            f"the default: [nats] embedded_port is -1 {where}, so the embedded server's "
            f"port cannot be known; {how}"
        )
    return (
        f"the embedded server's address, [nats] embedded_host:embedded_port {where}; "
        f"for another bus, {how}"
    )
