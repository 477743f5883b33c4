"""The bus behind credentials: services connect with user/password, a token, an nkey or a
.creds file (operator/JWT auth) when configured; wrong credentials are an error that names
the settings to check; a neuron not on the allow-list is ignored, and logged, by gateways
and schedulers."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec
import nats
import nkeys
import pytest

from cortex_core.config import NeuronEntry, Settings
from cortex_core.nats_server import EmbeddedNats
from cortex_neuron.main import run_neuron
from cortex_wire import codec, subjects
from cortex_wire.messages import Heartbeat
from tests.conftest import write_catalogue
from tests.support.nats_jwt import write_operator_setup
from tests.support.processes import toml
from tests.support.stack import running_stack, stack_settings

SCRIPTED = [{"id": "s", "n_ctx": 64, "script": {"reply": "ok"}}]


@asynccontextmanager
async def guarded_bus(folder: Path, *args: str) -> AsyncIterator[EmbeddedNats]:
    server = EmbeddedNats("127.0.0.1", -1, folder / "nats", extra_args=args)
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


async def first_heartbeat(url: str, observer: dict[str, Any], nats_settings: dict[str, Any],
                          folder: Path) -> Heartbeat:  # fmt: skip
    """Run a neuron with `nats_settings` and return its first heartbeat, as an observer
    connected with `observer` credentials sees it."""
    nc = await nats.connect(url, **observer)
    sub = await nc.subscribe(subjects.heartbeat("n1"))
    await nc.flush()
    models = write_catalogue(folder / "models.toml", SCRIPTED)
    raw = {
        "nats": {"url": url, **nats_settings},
        "neuron": {"name": "n1", "models": str(models), "metrics_listen": ""},
    }
    stop = asyncio.Event()
    task = asyncio.create_task(run_neuron(msgspec.convert(raw, Settings), stop))
    try:
        return codec.decode((await sub.next_msg(timeout=20)).data, Heartbeat)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        await nc.close()


async def test_user_and_password(tmp_path: Path) -> None:
    async with guarded_bus(tmp_path, "--user", "cortex", "--pass", "s3cret") as bus:
        creds = {"user": "cortex", "password": "s3cret"}
        beat = await first_heartbeat(bus.url, creds, creds, tmp_path)
    assert beat.node == "n1"


async def test_token(tmp_path: Path) -> None:
    async with guarded_bus(tmp_path, "--auth", "t0ken-value") as bus:
        beat = await first_heartbeat(bus.url, {"token": "t0ken-value"}, {"token": "t0ken-value"},
                                     tmp_path)  # fmt: skip
    assert beat.node == "n1"


async def test_nkey(tmp_path: Path) -> None:
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    seed_file = tmp_path / "user.nk"
    seed_file.write_bytes(seed)
    conf = tmp_path / "nats.conf"
    conf.write_text(f'authorization {{ users = [ {{ nkey: "{public}" }} ] }}\n')
    async with guarded_bus(tmp_path, "-c", str(conf)) as bus:
        beat = await first_heartbeat(
            bus.url, {"nkeys_seed": str(seed_file)}, {"nkey_seed": str(seed_file)}, tmp_path
        )
    assert beat.node == "n1"


async def test_creds_file(tmp_path: Path) -> None:
    config, creds = write_operator_setup(tmp_path)
    async with guarded_bus(tmp_path, "-c", str(config)) as bus:
        beat = await first_heartbeat(
            bus.url, {"user_credentials": str(creds)}, {"creds": str(creds)}, tmp_path
        )
    assert beat.node == "n1"


async def wait_for_line(stream: asyncio.StreamReader, wanted: Callable[[str], bool]) -> str:
    while True:
        line = (await stream.readline()).decode()
        if not line:
            raise AssertionError("the process ended without saying it")
        if wanted(line):
            return line


async def test_wrong_credentials_say_which_settings_to_check(tmp_path: Path) -> None:
    async with guarded_bus(tmp_path, "--user", "cortex", "--pass", "s3cret") as bus:
        models = write_catalogue(tmp_path / "models.toml", SCRIPTED)
        config = tmp_path / "neuron.toml"
        config.write_text(toml({
            "nats": {"url": bus.url, "user": "cortex", "password": "wrong"},
            "neuron": {"name": "n1", "models": str(models), "metrics_listen": ""},
        }))  # fmt: skip
        neuron = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cortex_cli.main", "neuron", "--config", str(config),
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "CORTEX_LOG_FORMAT": "json"},
        )  # fmt: skip
        assert neuron.stderr is not None
        try:
            line = await asyncio.wait_for(
                wait_for_line(neuron.stderr, lambda text: "nats_auth_failed" in text), 30
            )
        finally:
            neuron.kill()
            await neuron.wait()
    assert "Authorization Violation" in line and "password" in line
    assert "wrong" not in line  # the password itself is never logged


async def test_a_neuron_off_the_allow_list_is_ignored_and_logged(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    async with guarded_bus(tmp_path) as bus:
        intruder_models = write_catalogue(
            tmp_path / "intruder.toml", [{"id": "bait", "n_ctx": 64, "script": {"reply": "x"}}]
        )
        trusted_models = write_catalogue(tmp_path / "trusted.toml", SCRIPTED)
        raw = {"nats": {"url": bus.url},
               "neuron": {"name": "intruder", "models": str(intruder_models),
                          "metrics_listen": ""}}  # fmt: skip
        stop = asyncio.Event()
        intruder = asyncio.create_task(run_neuron(msgspec.convert(raw, Settings), stop))
        settings = msgspec.structs.replace(
            stack_settings(bus.url, trusted_models, node="trusted"),
            neurons=[NeuronEntry(name="trusted")],
        )
        try:
            with running_stack(settings) as stack:
                # Two of the intruder's heartbeats after the gateway listens: it has seen one.
                nc = await nats.connect(bus.url)
                beats = await nc.subscribe(subjects.heartbeat("intruder"))
                for _ in range(2):
                    await beats.next_msg(timeout=30)
                await nc.close()
                async with httpx.AsyncClient(base_url=stack.base_url) as client:
                    ids = [m["id"] for m in (await client.get("/v1/models")).json()["data"]]
                    bait = await client.post(
                        "/v1/chat/completions",
                        json={"model": "bait", "messages": [{"role": "user", "content": "x"}]},
                    )
                logged = "".join(capfd.readouterr())  # (the first of the two, a second ago)
        finally:
            stop.set()
            await asyncio.wait_for(intruder, 20)
    assert "s" in ids and "bait" not in ids
    assert bait.status_code == 404
    assert "neuron_not_allowed" in logged and "intruder" in logged
