"""Running the gateway: NATS connection, fleet view from heartbeats, HTTP and metrics."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

import msgspec
import structlog
import uvicorn
from nats.aio.client import Client
from nats.aio.msg import Msg

from cortex_core.bus import connect
from cortex_core.config import ConfigError, Settings, parse_host_port
from cortex_core.fleet import FleetState
from cortex_core.metrics_server import serve_metrics
from cortex_gateway.app import Gateway, create_app
from cortex_gateway.metrics import GatewayMetrics
from cortex_wire import codec, subjects
from cortex_wire.messages import GatewayHeartbeat, Heartbeat, RequestRecord

log = structlog.get_logger("gateway")


def bind(listen: str) -> socket.socket:
    """Bind the HTTP socket before serving: connections queue from this moment on, and
    port 0 works (the port actually bound is on the socket)."""
    host, port = parse_host_port(listen, "gateway.listen", "settings")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Named TCP, so asyncio sets TCP_NODELAY on each connection it accepts (it checks the
    # protocol); set here too, where accepted sockets inherit it. Without it a reused
    # connection's response waited ~40 ms on Nagle and the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ConfigError(f"gateway.listen: cannot listen on {listen}: {error.strerror}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def heartbeats(nc: Client, gateway: Gateway, interval: float) -> None:
    """Tell neurons this gateway is alive; they cancel the requests of one that stops."""
    subject = subjects.gateway_heartbeat(gateway.name)
    while True:
        beat = GatewayHeartbeat(
            gateway=gateway.name,
            sent_at=time.time(),
            interval_s=interval,
            streams=gateway.inference.following,
        )
        try:
            await nc.publish(subject, codec.encode(beat))
        except Exception as error:  # the bus is away: say so, keep beating
            log.warning("heartbeat_failed", error=str(error) or type(error).__name__)
        await asyncio.sleep(interval)


async def run_gateway(
    settings: Settings, stop: asyncio.Event, listening: Callable[[int, int], None] | None = None
) -> None:
    """Serve until `stop` is set; `listening(http_port, metrics_port)` once bound."""
    nc = await connect(settings.nats, "cortex-gateway")
    fleet = FleetState(allowed={n.name for n in settings.neurons})
    refused: set[str] = set()
    gateway: Gateway | None = None

    async def on_heartbeat(msg: Msg) -> None:
        try:
            heartbeat = codec.decode(msg.data, Heartbeat)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            log.warning("bad_heartbeat", subject=msg.subject, error=str(error))
            return
        if fleet.observe(heartbeat, time.monotonic()):
            if gateway is not None:
                gateway.fleet_changed()
        elif heartbeat.node not in refused:
            refused.add(heartbeat.node)
            log.warning("neuron_not_allowed", node=heartbeat.node)

    await nc.subscribe(subjects.HEARTBEATS, cb=on_heartbeat)

    async def on_record(msg: Msg) -> None:
        if gateway is None:
            return
        try:
            record = codec.decode(msg.data, RequestRecord)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("bad_request_record", subject=msg.subject)
            return
        if record.gateway != gateway.name:  # our own were added when they finished
            gateway.recent.add(record)

    await nc.subscribe(subjects.REQUEST_RECORDS, cb=on_record)
    metrics = GatewayMetrics()
    metrics_server = serve_metrics(
        settings.gateway.metrics_listen, metrics.registry, "gateway.metrics_listen"
    )
    gateway = Gateway(
        nc=nc, fleet=fleet, settings=settings.gateway, metrics=metrics,
        kv_replicas=settings.nats.kv_replicas,
    )  # fmt: skip
    sock = bind(settings.gateway.listen)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(gateway), log_config=None, log_level="warning", access_log=False,
            lifespan="off", timeout_graceful_shutdown=5,
        )
    )  # fmt: skip
    http_port = sock.getsockname()[1]
    log.info("gateway_listening", port=http_port, listen=settings.gateway.listen,
             metrics_port=metrics_server.server_port if metrics_server else 0)  # fmt: skip
    serve = asyncio.create_task(server.serve(sockets=[sock]))
    if listening is not None:
        listening(http_port, metrics_server.server_port if metrics_server else 0)
    stopped = asyncio.create_task(stop.wait())
    beating = asyncio.create_task(heartbeats(nc, gateway, settings.gateway.heartbeat_interval_s))
    try:
        await asyncio.wait({serve, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        beating.cancel()
        server.should_exit = True
        await asyncio.gather(serve, return_exceptions=True)
        stopped.cancel()
        if metrics_server is not None:
            metrics_server.shutdown()
        sock.close()
        await nc.drain()
        log.info("gateway_stopped")
