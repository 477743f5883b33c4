"""The prepared GPU check, in one command: `python3 -m bench.gpu.check [--cpu]`.

On the GPU machine (no network; what it needs travels in the folder prepare.py makes):
installs the carried wheels into a throwaway folder, builds llama-cpp-python from the
carried, pruned source with CUDA for this GPU's architecture only, on every core, installs
it there too, and runs the measurements (measure.py) on that installation. With `--cpu`
(here, and in the test that keeps this flow from rotting) the build is skipped and the
measurements run on this interpreter's own llama-cpp-python, expecting no GPU.

Writes $OUT/gpu-check.json (or --out): the machine, each setup step's seconds, and the
measurements. Only the standard library is imported here: nothing else is installed yet.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PREPARED = ROOT / ".cache" / "gpu-check"
# The device call is killed at 600 s: measurements stop here, so the findings are written
# and travel back.
BUDGET_S = 540
# Where cortex's packages live in the source tree (the check runs them from there).
SOURCES = ("libs/cortex_wire", "libs/cortex_core", "cli/cortex_cli", "services/gateway",
           "services/neuron", "services/scheduler")  # fmt: skip


def say(message: str) -> None:
    print(f"[gpu-check {time.strftime('%H:%M:%S')}] {message}", flush=True)


def cmake_args(arch: str, cublas: Path | None, driver: Path | None) -> list[str]:
    """CMake options for a CUDA build of llama-cpp-python for one GPU architecture.
    `cublas`: a folder holding libcublas and its headers where the toolkit has none (the
    pip package nvidia-cublas); `driver`: libcuda.so where CMake cannot find it (without
    one, llama.cpp's virtual memory pool is left out, which needs the driver API)."""
    args = ["-DGGML_CUDA=on", f"-DCMAKE_CUDA_ARCHITECTURES={arch}", "-DLLAVA_BUILD=off",
            "-DGGML_CCACHE=off"]  # fmt: skip
    if cublas is not None:
        args += [
            f"-DCUDA_cublas_LIBRARY={next(cublas.glob('lib/libcublas.so*'))}",
            f"-DCUDA_cublasLt_LIBRARY={next(cublas.glob('lib/libcublasLt.so*'))}",
            f"-DCMAKE_CUDA_FLAGS=-I{cublas / 'include'}",
            f"-DCMAKE_CXX_FLAGS=-I{cublas / 'include'}",
        ]
    args.append(f"-DCUDA_cuda_driver_LIBRARY={driver}" if driver else "-DGGML_CUDA_NO_VMM=on")
    return args


def gpu_arch() -> str:
    """This machine's GPU architecture as CMake spells it (9.0 -> "90")."""
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return out.split()[0].replace(".", "")


def toolkit_has_cublas() -> bool:
    nvcc = shutil.which("nvcc")
    cuda = Path(nvcc).resolve().parents[1] if nvcc else Path("/usr/local/cuda")
    return any(cuda.glob("lib64/libcublas.so*")) or any(cuda.glob("targets/*/lib/libcublas.so*"))


def pip_cublas() -> Path | None:
    """The nvidia-cublas package's folder (nvidia/cu13 or nvidia/cublas) on sys.path."""
    for entry in map(Path, sys.path):
        for folder in sorted(entry.glob("nvidia/*")):
            if any(folder.glob("lib/libcublas.so*")) and (folder / "include").is_dir():
                return folder
    return None


def driver_library() -> Path | None:
    found = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    for line in found.splitlines():
        if "libcuda.so" in line and "=>" in line:
            return Path(line.split("=>")[1].strip())
    for folder in (
        "/usr/local/nvidia/lib64",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/local/cuda/lib64/stubs",
    ):
        hits = sorted(Path(folder).glob("libcuda.so*"))
        if hits:
            return hits[0]
    return None


def ninja_summary(log: str, slowest: int = 5) -> dict[str, object]:
    """From a .ninja_log: how many compile steps, their summed seconds (the build's work:
    what the cores share), and the slowest units (a parallel build is never shorter than
    the slowest one)."""
    steps = {}
    for line in log.splitlines():
        if line.startswith("#"):
            continue
        start, end, _, output, *_ = line.split("\t")
        steps[output] = (int(end) - int(start)) / 1000  # a rebuilt output counts once
    ranked = sorted(steps.items(), key=lambda item: -item[1])[:slowest]
    return {
        "steps": len(steps),
        "work_s": round(sum(steps.values()), 1),
        "slowest": {Path(name).name: round(seconds, 1) for name, seconds in ranked},
    }


def run(command: list[str], env: dict[str, str] | None = None) -> None:
    say("$ " + " ".join(command))
    subprocess.run(command, check=True, env=env)


def setup(
    prepared: Path, work: Path, times: dict[str, object], wheel: Path | None = None
) -> dict[str, str]:
    """Install the wheels and the CUDA build (or a llama-cpp-python `wheel` built before)
    into `work/site`; the environment to run in."""
    site = work / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
           "--no-compile", "--no-cache-dir", "--target", str(site)]  # fmt: skip
    started = time.perf_counter()
    run([*pip, *map(str, sorted((prepared / "wheels").glob("*.whl")))])
    times["install_wheels_s"] = round(time.perf_counter() - started, 1)
    cublas = None if wheel or toolkit_has_cublas() else pip_cublas()
    built = [wheel] if wheel else build(prepared, work, times, cublas)
    run([*pip, *map(str, built)])
    paths = [str(site), str(ROOT), *(str(ROOT / s) for s in SOURCES)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1",
           # Where the wheels' programs went (nats-server, which cortex up runs).
           "PATH": os.pathsep.join([str(site / "bin"), os.environ.get("PATH", "")])}  # fmt: skip
    if cublas is not None:  # the built library finds libcublas at run time through this
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            filter(None, [str(cublas / "lib"), os.environ.get("LD_LIBRARY_PATH")])
        )
    return env


def build(prepared: Path, work: Path, times: dict[str, object], cublas: Path | None) -> list[Path]:
    """Build llama-cpp-python from the carried source for this machine's GPU; its wheel."""
    arch = gpu_arch()
    env = {**os.environ, "CMAKE_ARGS": " ".join(cmake_args(arch, cublas, driver_library())),
           "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 1)}  # fmt: skip
    say(f"building llama-cpp-python for sm_{arch} on {os.cpu_count()} cores: {env['CMAKE_ARGS']}")
    started = time.perf_counter()
    # Beside `work`, not in it: a rerun on the same machine (after a call cut off mid-build)
    # resumes the build instead of starting it again, and its .ninja_log says where the
    # build's time went.
    folder = work.with_name(work.name + "-build")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-index", "--no-deps",
         "--no-build-isolation", f"--config-settings=build-dir={folder}", "-w",
         str(work / "wheel"), str(prepared / "llama-cpp-python")], env)  # fmt: skip
    times["build_llama_cpp_s"] = round(time.perf_counter() - started, 1)
    if (folder / ".ninja_log").is_file():
        times["build_units"] = ninja_summary((folder / ".ninja_log").read_text())
    return sorted((work / "wheel").glob("llama_cpp_python-*.whl"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.gpu.check")
    parser.add_argument("--prepared", type=Path, default=PREPARED)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench-results")))
    parser.add_argument("--work", type=Path, default=Path("/tmp/cortex-gpu-check"))
    parser.add_argument("--cpu", action="store_true", help="no build, no GPU expected")
    parser.add_argument("--wheel", type=Path, help="install this llama-cpp-python, no build")
    parser.add_argument("--streams", default="1,8,32")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--budget-s", type=float, default=BUDGET_S,
                        help="seconds from the start; later measurements are skipped")  # fmt: skip
    args = parser.parse_args(argv)
    shape = args.prepared / "model-shape.json"
    if not shape.is_file():
        print(f"{shape} is missing: run `python -m bench.gpu.prepare` first", file=sys.stderr)
        return 2
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    started = time.perf_counter()
    times: dict[str, object] = {}
    try:
        env = (
            {**os.environ, "PYTHONUNBUFFERED": "1"}
            if args.cpu
            else setup(args.prepared, args.work, times, args.wheel)
        )
    except subprocess.CalledProcessError as error:  # what failed is above, in its output
        times["failed"] = " ".join(map(str, error.cmd))[:500]
        return finish(args.out, times, args.cpu, None, error.returncode or 1)
    finish(args.out, times, args.cpu, None, 0)  # the build's numbers, should the rest not end
    (args.out / "measure.json").unlink(missing_ok=True)  # an earlier run's
    deadline = time.time() + args.budget_s - (time.perf_counter() - started)
    command = [sys.executable, "-m", "bench.gpu.measure", "--shape", str(shape), "--out",
               str(args.out), "--streams", args.streams, "--tokens", str(args.tokens),
               "--deadline", str(deadline)]  # fmt: skip
    if not args.cpu:
        command.append("--cuda")
    measured = subprocess.run(command, env=env, cwd=ROOT)
    times["total_s"] = round(time.perf_counter() - started, 1)
    found = args.out / "measure.json"
    data = json.loads(found.read_text()) if found.is_file() else None
    return finish(args.out, times, args.cpu, data, measured.returncode)


def finish(out: Path, times: dict[str, object], cpu: bool, measured: object, code: int) -> int:
    result = {
        "machine": {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "cores": os.cpu_count(), "python": platform.python_version(),
                    "gpu": "none (--cpu)" if cpu else "cuda"},
        "setup": times,
        "measured": measured,
    }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    target = out / "gpu-check.json"
    target.write_text(json.dumps(result, indent=2) + "\n")
    say(f"written {target}")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
