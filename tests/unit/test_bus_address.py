"""Where the bus is: with `[nats] url` empty, every client reads the embedded server's
address from the same settings `cortex up` used, and an error says where a URL came from."""

from cortex_core.bus import connect_options
from cortex_core.bus_address import bus_url, client_url, url_origin
from cortex_core.config import NatsSettings


def test_an_empty_url_means_the_embedded_servers_address() -> None:
    assert bus_url(NatsSettings(embedded_port=4333)) == "nats://127.0.0.1:4333"
    assert bus_url(NatsSettings(embedded_host="10.0.0.5", embedded_port=5000)) == (
        "nats://10.0.0.5:5000"
    )
    assert bus_url(NatsSettings()) == "nats://127.0.0.1:4222"
    assert connect_options(NatsSettings(embedded_port=4333))["servers"] == ["nats://127.0.0.1:4333"]


def test_a_configured_url_wins_and_port_minus_one_keeps_the_default() -> None:
    assert bus_url(NatsSettings(url="nats://a:1,nats://b:2", embedded_port=4333)) == (
        "nats://a:1,nats://b:2"
    )
    assert bus_url(NatsSettings(embedded_port=-1)) == "nats://127.0.0.1:4222"


def test_a_wildcard_listen_address_is_reached_on_loopback() -> None:
    assert client_url("0.0.0.0", 4222) == "nats://127.0.0.1:4222"
    assert client_url("::", 4222) == "nats://127.0.0.1:4222"
    assert client_url("::1", 4222) == "nats://[::1]:4222"


def test_the_origin_says_where_the_url_came_from_and_how_to_set_it() -> None:
    env_said = url_origin(NatsSettings(url="nats://x:1"), "c.toml", {"CORTEX_NATS_URL": "x"})
    assert env_said == "from CORTEX_NATS_URL"
    assert url_origin(NatsSettings(url="nats://x:1"), "c.toml", {}) == "from [nats] url in c.toml"
    embedded = url_origin(NatsSettings(embedded_port=4333), "c.toml", {})
    assert "embedded_port in c.toml" in embedded and "CORTEX_NATS_URL" in embedded
    unknowable = url_origin(NatsSettings(embedded_port=-1), None, {})
    assert "embedded_port is -1" in unknowable and "cannot be known" in unknowable
    assert "[nats] url or CORTEX_NATS_URL" in unknowable
