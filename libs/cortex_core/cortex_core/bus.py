"""Connecting to NATS with the configured credentials, reconnecting forever, logging why."""

from __future__ import annotations

import asyncio
from typing import Any

import nats
import structlog
from nats.aio.client import Client
from nats.errors import NoServersError

from cortex_core.bus_address import bus_url
from cortex_core.config import NatsSettings

log = structlog.get_logger("bus")


def connect_options(settings: NatsSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        # Empty [nats] url: the embedded server's address from the same settings.
        "servers": [u.strip() for u in bus_url(settings).split(",")],
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "connect_timeout": 5,
        "allow_reconnect": True,
        # The servers in the order given (the member on this host first, say); on losing
        # one, the client tries the others, and those the cluster told it of.
        "dont_randomize": True,
    }
    if settings.user:
        options["user"] = settings.user
        options["password"] = settings.password
    if settings.token:
        options["token"] = settings.token
    if settings.creds:
        options["user_credentials"] = settings.creds
    if settings.nkey_seed:
        options["nkeys_seed"] = settings.nkey_seed
    return options


async def connect(settings: NatsSettings, name: str) -> Client:
    """Connect (retrying until the server answers) and log every change of connection state."""

    async def on_error(error: Exception) -> None:
        text = str(error) or type(error).__name__
        if "authorization violation" in text.lower() or "authentication" in text.lower():
            # Retrying cannot fix this side of it: say which settings to look at.
            log.error(
                "nats_auth_failed", error=text,
                hint="check [nats] user/password, token, creds or nkey_seed",
            )  # fmt: skip
            return
        log.warning("nats_error", error=text)

    async def on_disconnect() -> None:
        log.warning("nats_disconnected")

    async def on_reconnect() -> None:
        log.info("nats_reconnected", url=str(client.connected_url))

    options = connect_options(settings)
    delay = 0.25
    while True:
        try:
            client = await nats.connect(
                name=name,
                error_cb=on_error,
                disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect,
                **options,
            )
            break
        except (OSError, NoServersError, TimeoutError) as error:
            # The bus may simply not be up yet (compose, systemd ordering): say so, retry.
            reason = str(error) or type(error).__name__
            log.warning(
                "nats_unreachable", servers=options["servers"], error=reason, retry_s=delay,
                hint="set [nats] url or CORTEX_NATS_URL",
            )  # fmt: skip
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
    url = client.connected_url.geturl() if client.connected_url else ""
    log.info("nats_connected", url=url)
    return client
