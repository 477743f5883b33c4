"""What this host can run models on: NVIDIA GPUs through NVML, else the CPU and its RAM."""

from __future__ import annotations

import os

import structlog

from cortex_wire.messages import Device

log = structlog.get_logger("devices")
MIB = 1024 * 1024


_nvml_missing = False


def discover_gpus() -> list[Device]:
    """Every NVIDIA GPU NVML can see, with current memory; [] without a driver or GPU."""
    global _nvml_missing
    if _nvml_missing:
        return []
    try:
        import pynvml

        pynvml.nvmlInit()
    except ImportError:
        _nvml_missing = True
        return []
    except pynvml.NVMLError as error:
        # No driver on this host: it will not appear while we run, so stop asking.
        _nvml_missing = True
        log.info("no_gpu", reason=str(error), serving_on="cpu")
        return []
    try:
        devices = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            devices.append(
                Device(
                    index=index,
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    kind="cuda",
                    total_mb=int(memory.total // MIB),
                    free_mb=int(memory.free // MIB),
                )
            )
        return devices
    except pynvml.NVMLError as error:
        log.warning("nvml_query_failed", reason=str(error))
        return []
    finally:
        pynvml.nvmlShutdown()


def system_memory_mb() -> tuple[int, int]:
    """(total, available) RAM in MiB, from /proc/meminfo (sysconf as a fallback)."""
    try:
        fields = {}
        with open("/proc/meminfo") as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                fields[key] = int(rest.split()[0]) // 1024
        return fields["MemTotal"], fields.get("MemAvailable", fields["MemTotal"])
    except (OSError, KeyError, ValueError):
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // MIB
        return total, total


def cpu_device(memory_budget_mb: int, used_mb: int) -> Device:
    """The CPU as a device whose capacity is the configured budget (default 80% of RAM)."""
    total, _ = system_memory_mb()
    budget = memory_budget_mb or int(total * 0.8)
    return Device(
        index=0,
        name=f"cpu ({os.cpu_count() or 1} cores)",
        kind="cpu",
        total_mb=budget,
        free_mb=max(budget - used_mb, 0),
    )
