"""The gateway's listening socket: what every connection it accepts is set to."""

import socket

from cortex_gateway.service import bind


def test_accepted_connections_send_at_once() -> None:
    """TCP_NODELAY on every accepted connection: without it a reused connection's response
    waited ~40 ms (Nagle and the client's delayed ACK) before it left."""
    listener = bind("127.0.0.1:0")
    try:
        assert listener.proto == socket.IPPROTO_TCP  # asyncio sets NODELAY on TCP only
        with socket.create_connection(listener.getsockname()[:2]):
            listener.setblocking(True)
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        listener.close()
