"""cortex.toml and models.toml: schema, loading, environment overrides, clear errors.

Every problem becomes one ConfigError that names the file, the key and what is wrong.
Environment variables override files: `CORTEX_<SECTION>_<KEY>` for `[section] key`
(e.g. CORTEX_NATS_URL, CORTEX_GATEWAY_LISTEN, CORTEX_NEURON_MODELS).
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec

T = TypeVar("T")


class ConfigError(Exception):
    """A configuration problem, already phrased for the operator."""


class Section(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class NatsSettings(Section):
    # Empty url: `cortex up` starts an embedded nats-server; services run alone and the
    # operator commands connect to embedded_host:embedded_port (with port -1, to the default
    # nats://127.0.0.1:4222: there is no knowing which port the server picked).
    url: str = ""
    user: str = ""
    password: str = ""
    token: str = ""
    creds: str = ""
    nkey_seed: str = ""
    # Port of the embedded nats-server that `cortex up` / `cortex nats` start.
    embedded_port: int = 4222
    embedded_host: str = "127.0.0.1"
    # Cluster mode for `cortex nats`: with a cluster name it runs one member of that
    # cluster, taking routes from the other members on `cluster_listen` and connecting to
    # theirs (`routes`, e.g. "nats://core-2:6222"). Each member needs its own server_name
    # (default: the hostname) for JetStream.
    cluster_name: str = ""
    cluster_listen: str = "0.0.0.0:6222"
    routes: list[str] = msgspec.field(default_factory=list)
    server_name: str = ""
    # Copies JetStream keeps of the scheduler's lease and pins: 3 on a three-member
    # cluster, so losing any one server loses neither.
    kv_replicas: int = 1


class GatewaySettings(Section):
    listen: str = "127.0.0.1:31313"
    metrics_listen: str = "127.0.0.1:31314"
    max_body_bytes: int = 4 * 1024 * 1024
    # How long a request may wait for a cold model to become ready.
    load_timeout_s: float = 600.0
    # A stream with no frame (not even a keep-alive) for this long has failed: its neuron is
    # gone. Neurons send a frame at least every [neuron] keepalive_interval_s (1 s), so keep
    # this above twice that. A request that had no token yet moves to another replica.
    stream_idle_timeout_s: float = 2.5
    # SSE keep-alives (comments / Anthropic pings) while a request waits.
    keepalive_interval_s: float = 1.0
    # A streaming client that has not taken a frame for this long (it stopped reading) has
    # its generation cancelled; its frames are dropped rather than held.
    client_stall_timeout_s: float = 30.0
    # How often the gateway tells neurons it is alive (they cancel an orphan's requests).
    heartbeat_interval_s: float = 1.0
    # A cold request waits this long for a scheduler to answer (one may be taking over).
    scheduler_grace_s: float = 10.0
    # API keys (Authorization: Bearer KEY or x-api-key: KEY). With require_auth, every route
    # but /health needs one; admin routes (/admin/...) always need one of admin_keys.
    require_auth: bool = False
    api_keys: list[str] = msgspec.field(default_factory=list)
    admin_keys: list[str] = msgspec.field(default_factory=list)
    # Drop Claude Code's per-request billing line from Anthropic system prompts before
    # templating: it changes with every request and would defeat prefix reuse.
    strip_billing_header: bool = True
    # Send a conversation's next turn to the replica whose cache holds its start, unless
    # that replica is much busier; false: always to the least busy replica.
    route_by_prefix: bool = True
    # Stored Responses (store, previous_response_id, GET/DELETE /v1/responses/{id}) live in
    # the bus's JetStream KV for this long, in at most this much space (oldest go first).
    responses_ttl_s: float = 30 * 24 * 3600.0
    responses_max_mb: int = 256


class NeuronSettings(Section):
    name: str = ""
    models: str = ""
    # CPU-only hosts (and tests) place models against this budget; 0 = 80% of RAM.
    memory_budget_mb: int = 0
    heartbeat_interval_s: float = 1.0
    # A stream with nothing to say (queued, prefilling) sends a keep-alive frame this often.
    keepalive_interval_s: float = 1.0
    # While more than one stream runs here, a stream's frames are at least this far apart
    # (one more interval per 16 streams, up to 4x, and two of the stream's tokens where
    # steps are slower): tokens produced meanwhile share the next frame, so a fast stream
    # costs the bus and gateways one message per interval, not one per token. The first
    # frame is never held back. 0 sends whatever is ready at once.
    frame_interval_s: float = 0.02
    # Bound on requests waiting for each loaded model's engine thread.
    queue_depth: int = 64
    # Host memory (per loaded model) for conversations' KV caches put aside when their slot
    # is taken, so their next turn restores the cache instead of prefilling it; 0: off.
    kv_host_cache_mb: int = 1024
    n_threads: int = 0
    # Set false to hide GPUs even when NVML finds them.
    use_gpu: bool = True
    # Prometheus endpoint of this neuron ("" disables).
    metrics_listen: str = "127.0.0.1:31315"


class SchedulerSettings(Section):
    load_timeout_s: float = 600.0
    # Prometheus endpoint of this scheduler ("" disables).
    metrics_listen: str = "127.0.0.1:31316"
    # The active scheduler renews its lease in JetStream KV; a standby takes over once the
    # lease has gone unrenewed this long.
    lease_ttl_s: float = 3.0
    # An `ensure` request is answered within this long: ready, failed, or "still loading".
    ensure_wait_s: float = 3.0
    # After a load fails, requests for that model get the same error for this long
    # instead of a new load attempt each (no retry storm).
    failed_load_backoff_s: float = 30.0
    # How often pins and defrag_after_cycles are checked.
    tick_s: float = 1.0
    # A scheduler listens to heartbeats this long before it may lead, so its first
    # decision never rests on a half-seen fleet.
    warmup_s: float = 2.5


class EvictionSettings(Section):
    strategy: Literal["lru", "priority"] = "lru"
    defrag_after_cycles: int = 0


class NeuronEntry(Section):
    name: str


class Settings(Section):
    state_dir: str = ""
    nats: NatsSettings = msgspec.field(default_factory=NatsSettings)
    gateway: GatewaySettings = msgspec.field(default_factory=GatewaySettings)
    neuron: NeuronSettings = msgspec.field(default_factory=NeuronSettings)
    scheduler: SchedulerSettings = msgspec.field(default_factory=SchedulerSettings)
    eviction: EvictionSettings = msgspec.field(default_factory=EvictionSettings)
    # Allow-list of neuron names; empty admits every neuron.
    neurons: list[NeuronEntry] = msgspec.field(default_factory=list)

    def resolved_state_dir(self) -> Path:
        if self.state_dir:
            return Path(self.state_dir).expanduser()
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(base) / "cortex"

    def listen_addresses(self) -> list[tuple[str, str]]:
        """Each HOST:PORT a service of this machine listens on, by its key ("": off)."""
        return [
            ("gateway.listen", self.gateway.listen),
            ("gateway.metrics_listen", self.gateway.metrics_listen),
            ("neuron.metrics_listen", self.neuron.metrics_listen),
            ("scheduler.metrics_listen", self.scheduler.metrics_listen),
        ]

    def neuron_name(self) -> str:
        return self.neuron.name or socket.gethostname()


class ScriptProfile(Section):
    """A model-free engine that plays `reply` token by token (one token per UTF-8 byte or
    special marker) at a fixed step rate: for overhead benchmarks and load tests."""

    reply: str = "The quick brown fox jumps over the lazy dog."
    # Decode steps per second, each giving every active sequence one token (0: unpaced).
    tokens_per_s: float = 0.0
    # Play the reply over and over instead of ending after it.
    repeat: bool = False
    # Seconds its load takes (a big model's, for what a slow cold load does upstream).
    load_s: float = 0.0


class ModelProfile(Section):
    id: str
    # The GGUF file; unused by a scripted model.
    path: str = ""
    n_ctx: int = 4096
    # -1 offloads every layer to the GPU; CPU-only builds ignore it.
    n_gpu_layers: int = -1
    main_gpu: int = 0
    tensor_split: list[float] = msgspec.field(default_factory=list)
    # Footprint in MiB; 0 = estimate from the GGUF size and n_ctx.
    vram_mb: int = 0
    min_devices: int = 1
    min_device_vram_mb: int = 0
    pinned_on: list[str] = msgspec.field(default_factory=list)
    residency_priority: int = 0
    parallel: int = 1
    n_batch: int = 512
    # One KV buffer for all slots (llama.cpp's unified cache): a prefix shared by several
    # slots is held once, not once per slot, but every token's attention then spans every
    # slot's cells (see bench/results: decode slowed with it here, so off by default).
    kv_unified: bool = False
    # llama.cpp's repacked CPU weight layouts (AMX tiles, interleaved AVX2/NEON blocks);
    # unset: on, except where llama.cpp would use AMX, whose matrix multiply crashes.
    cpu_repack: bool | None = None
    # llama.cpp's flash attention; unset: llama.cpp's own choice when layers go to a GPU,
    # off on the CPU, where it makes steps under 64 tokens slower (bench `attention`).
    flash_attn: bool | None = None
    # Admission on each neuron: requests generating at once (0 = `parallel`) and requests
    # waiting behind them (-1 = [neuron] queue_depth); beyond that, 429 with Retry-After.
    max_in_flight: int = 0
    max_queue_depth: int = -1
    # Set: serve this model with the scripted engine instead of llama.cpp.
    script: ScriptProfile | None = None
    # An embedding model (its GGUF names a pooling type): served on /v1/embeddings and
    # /api/embed, refused for chat.
    embedding: bool = False


class Catalogue(Section):
    models: list[ModelProfile] = msgspec.field(default_factory=list)
    aliases: dict[str, str] = msgspec.field(default_factory=dict)

    def profile(self, model_id: str) -> ModelProfile | None:
        return next((m for m in self.models if m.id == model_id), None)


def _where(error: msgspec.ValidationError) -> tuple[str, str]:
    """Split msgspec's "problem - at `$.a.b[0]`" into (key path, problem)."""
    text = str(error)
    match = re.search(r" - at `\$\.?(.*)`$", text)
    if not match:
        return "", text
    return match.group(1) or "(top level)", text[: match.start()]


def _convert(raw: Mapping[str, Any], kind: type[T], source: str) -> T:
    try:
        return msgspec.convert(raw, kind, strict=False)
    except msgspec.ValidationError as error:
        key, problem = _where(error)
        raise ConfigError(f"{source}: {key or '(top level)'}: {problem}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None


def apply_env_overrides(raw: dict[str, Any], env: Mapping[str, str]) -> tuple[dict, list[str]]:
    """Return `raw` with CORTEX_<SECTION>_<KEY> values laid over it, and the names used."""
    merged = {key: dict(value) if isinstance(value, dict) else value for key, value in raw.items()}
    used: list[str] = []
    for section in msgspec.structs.fields(Settings):
        if not (isinstance(section.type, type) and issubclass(section.type, Section)):
            continue
        for field in msgspec.structs.fields(section.type):
            name = f"CORTEX_{section.name}_{field.name}".upper()
            if name in env:
                value: Any = env[name]
                if getattr(field.type, "__origin__", None) is list:
                    value = [v.strip() for v in value.split(",") if v.strip()]
                merged.setdefault(section.name, {})[field.name] = value
                used.append(name)
    if "CORTEX_STATE_DIR" in env:
        merged["state_dir"] = env["CORTEX_STATE_DIR"]
        used.append("CORTEX_STATE_DIR")
    return merged, used


def load_settings(
    path: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None
) -> Settings:
    """Load cortex.toml (or defaults when `path` is None) with environment overrides."""
    env = os.environ if env is None else env
    raw = _read_toml(Path(path)) if path else {}
    merged, used = apply_env_overrides(raw, env)
    source = str(path) if path else "defaults"
    if used:
        source += f" (with {', '.join(used)})"
    settings = _convert(merged, Settings, source)
    _check_settings(settings, source)
    return settings


def parse_host_port(value: str, key: str, source: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{source}: {key}: expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _check_settings(settings: Settings, source: str) -> None:
    parse_host_port(settings.gateway.listen, "gateway.listen", source)
    for key, value in settings.listen_addresses():
        if value:  # empty turns a metrics endpoint off
            parse_host_port(value, key, source)
    if settings.nats.cluster_name:
        parse_host_port(settings.nats.cluster_listen, "nats.cluster_listen", source)
    if not 1 <= settings.nats.kv_replicas <= 5:
        raise ConfigError(f"{source}: nats.kv_replicas: must be 1 to 5 (JetStream's range)")
    if settings.gateway.responses_ttl_s <= 0 or settings.gateway.responses_max_mb < 1:
        raise ConfigError(
            f"{source}: gateway.responses_ttl_s and responses_max_mb: must be > 0 (a stored "
            "response needs room and time)"
        )
    if settings.eviction.defrag_after_cycles < 0:
        raise ConfigError(f"{source}: eviction.defrag_after_cycles: must be >= 0")
    if settings.neuron.queue_depth < 1:
        raise ConfigError(f"{source}: neuron.queue_depth: must be >= 1")
    if settings.neuron.frame_interval_s < 0:
        raise ConfigError(f"{source}: neuron.frame_interval_s: must be >= 0")
    for key in ("heartbeat_interval_s", "keepalive_interval_s"):
        if getattr(settings.neuron, key) <= 0:
            raise ConfigError(f"{source}: neuron.{key}: must be > 0")
    for setting, number in _numbers(settings):
        least = _LEAST.get(setting, 0)
        if setting in _POSITIVE and number <= 0:
            raise ConfigError(f"{source}: {setting}: must be > 0")
        if number < least:
            raise ConfigError(f"{source}: {setting}: must be >= {least}")


# Numeric settings that must be above 0 (limits, timeouts, intervals: 0 would refuse or
# time out everything); the others may be 0 (off, or: decide for me) but not below.
_POSITIVE = frozenset({
    "gateway.max_body_bytes", "gateway.load_timeout_s", "gateway.stream_idle_timeout_s",
    "gateway.keepalive_interval_s", "gateway.client_stall_timeout_s",
    "gateway.heartbeat_interval_s", "gateway.scheduler_grace_s",
    "scheduler.load_timeout_s", "scheduler.lease_ttl_s", "scheduler.ensure_wait_s",
    "scheduler.tick_s",
})  # fmt: skip
_LEAST = {"nats.embedded_port": -1}  # -1: any free port


def _numbers(settings: Settings) -> list[tuple[str, float]]:
    """Every numeric setting of the sections, by its dotted key."""
    found = []
    for section_name in ("nats", "gateway", "neuron", "scheduler", "eviction"):
        section = getattr(settings, section_name)
        for name in section.__struct_fields__:
            value = getattr(section, name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                found.append((f"{section_name}.{name}", value))
    return found


def load_catalogue(path: str | os.PathLike[str]) -> Catalogue:
    """Load models.toml; model paths are relative to the file's own folder."""
    file = Path(path)
    catalogue = _convert(_read_toml(file), Catalogue, str(file))
    seen: set[str] = set()
    for index, model in enumerate(catalogue.models):
        key = f"models[{index}]"
        if not model.id.strip():
            raise ConfigError(f"{file}: {key}.id: must not be empty")
        if model.id in seen:
            raise ConfigError(f"{file}: {key}.id: duplicate model id {model.id!r}")
        seen.add(model.id)
        for name in ("n_ctx", "parallel", "min_devices", "n_batch"):
            if getattr(model, name) < 1:
                raise ConfigError(f"{file}: {key}.{name}: must be >= 1")
        if model.script is not None:
            if model.script.tokens_per_s < 0:
                raise ConfigError(f"{file}: {key}.script.tokens_per_s: must be >= 0")
            continue
        if not model.path:
            raise ConfigError(f"{file}: {key}.path: required (the model's GGUF file)")
        model.path = str((file.parent / Path(model.path).expanduser()).resolve())
    for alias, target in catalogue.aliases.items():
        if alias in seen:
            raise ConfigError(f"{file}: aliases.{alias}: shadows a model id")
        if target not in seen:
            raise ConfigError(f"{file}: aliases.{alias}: unknown model {target!r}")
    return catalogue
