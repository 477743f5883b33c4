from pathlib import Path

import pytest

from cortex_core.config import ConfigError, load_catalogue, load_settings


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_without_a_file() -> None:
    settings = load_settings(None, env={})
    assert settings.gateway.listen == "127.0.0.1:31313"
    assert settings.gateway.metrics_listen == "127.0.0.1:31314"
    assert settings.eviction.strategy == "lru"


def test_file_values_and_environment_overrides(tmp_path: Path) -> None:
    config = write(
        tmp_path / "cortex.toml",
        '[gateway]\nlisten = "0.0.0.0:8080"\n[eviction]\nstrategy = "priority"\n'
        'defrag_after_cycles = 5\n[[neurons]]\nname = "gpu-1"\n',
    )
    settings = load_settings(
        config, env={"CORTEX_NATS_URL": "nats://bus:4222", "CORTEX_NEURON_QUEUE_DEPTH": "7"}
    )
    assert settings.gateway.listen == "0.0.0.0:8080"
    assert settings.eviction.strategy == "priority"
    assert settings.eviction.defrag_after_cycles == 5
    assert [n.name for n in settings.neurons] == ["gpu-1"]
    assert settings.nats.url == "nats://bus:4222"
    assert settings.neuron.queue_depth == 7


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[gateway]\nlisten = 31313\n", "gateway.listen"),
        ('[gateway]\nlisten = "nohost"\n', "gateway.listen: expected HOST:PORT"),
        ('[eviction]\nstrategy = "fifo"\n', "eviction.strategy"),
        ('[gateway]\nlisten_on = "x"\n', "listen_on"),
        ("[gateway\n", "not valid TOML"),
        ("[nats]\nkv_replicas = 0\n", "nats.kv_replicas: must be 1 to 5"),
        ('[nats]\ncluster_name = "c"\ncluster_listen = "6222"\n', "nats.cluster_listen"),
        ("[neuron]\nmemory_budget_mb = -5\n", "neuron.memory_budget_mb: must be >= 0"),
        ("[gateway]\nmax_body_bytes = -1\n", "gateway.max_body_bytes: must be > 0"),
        ("[gateway]\nstream_idle_timeout_s = 0\n", "gateway.stream_idle_timeout_s: must be > 0"),
        ("[scheduler]\ntick_s = 0\n", "scheduler.tick_s: must be > 0"),
        ("[nats]\nembedded_port = -2\n", "nats.embedded_port: must be >= -1"),
    ],
)
def test_bad_config_names_file_key_and_problem(tmp_path: Path, text: str, expected: str) -> None:
    config = write(tmp_path / "cortex.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_settings(config, env={})
    assert str(config) in str(caught.value)
    assert expected in str(caught.value)


def test_bad_environment_override_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CORTEX_NEURON_QUEUE_DEPTH"):
        load_settings(None, env={"CORTEX_NEURON_QUEUE_DEPTH": "many"})


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.toml", env={})


def test_catalogue_paths_resolve_relative_to_the_file(tmp_path: Path) -> None:
    models = write(
        tmp_path / "models.toml",
        '[[models]]\nid = "m1"\npath = "weights/m1.gguf"\nn_ctx = 1024\npinned_on = ["a"]\n'
        '[aliases]\nfast = "m1"\n',
    )
    catalogue = load_catalogue(models)
    assert catalogue.models[0].path == str(tmp_path / "weights" / "m1.gguf")
    assert catalogue.models[0].pinned_on == ["a"]
    assert catalogue.aliases == {"fast": "m1"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[[models]]\nid = "a"\npath = "x"\n[[models]]\nid = "a"\npath = "y"\n',
            "duplicate model id",
        ),
        ('[[models]]\nid = "a"\npath = "x"\n[aliases]\nb = "zzz"\n', "aliases.b: unknown model"),
        ('[[models]]\nid = "a"\npath = "x"\nn_ctx = 0\n', "models[0].n_ctx"),
        ('[[models]]\nid = "a"\n', "path"),
        ('[[models]]\nid = "a"\npath = "x"\nvram = 3\n', "vram"),
    ],
)
def test_bad_catalogue_is_a_clear_error(tmp_path: Path, text: str, expected: str) -> None:
    models = write(tmp_path / "models.toml", text)
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        load_catalogue(models)


def test_the_example_files_are_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    settings = load_settings(root / "cortex.example.toml", env={})
    assert settings.gateway.listen == "127.0.0.1:31313"
    catalogue = load_catalogue(root / "models.example.toml")
    assert catalogue.aliases["smollm2"] in {m.id for m in catalogue.models}


def test_list_settings_come_from_comma_separated_environment() -> None:
    settings = load_settings(None, env={"CORTEX_GATEWAY_API_KEYS": "k1, k2"})
    assert settings.gateway.api_keys == ["k1", "k2"]


def test_a_cluster_member_gets_routes_a_cluster_port_and_its_name() -> None:
    from cortex_core.nats_server import cluster_args

    assert cluster_args("", "0.0.0.0:6222", ["nats://b:6222"], "a") == []
    assert cluster_args("cortex", "0.0.0.0:6222", ["nats://b:6222", "nats://c:6222"], "a") == [
        "--cluster_name", "cortex", "--cluster", "nats://0.0.0.0:6222",
        "--routes", "nats://b:6222,nats://c:6222", "--server_name", "a",
    ]  # fmt: skip
