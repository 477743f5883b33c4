"""A Docker daemon for the tests here (started for them if none runs), or a skip that
says why none can run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.docker_host import NoDocker, docker_daemon


@pytest.fixture(scope="session")
def docker_ready(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    log = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
    try:
        with docker_daemon(log):
            yield
    except NoDocker as why:
        pytest.skip(f"no Docker here: {why}")
