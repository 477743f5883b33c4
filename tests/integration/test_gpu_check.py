"""The prepared GPU check (bench/gpu), kept from rotting between GPU runs: its pruning keeps
what a CUDA build needs and nothing else, its CMake options say what the machine lacks,
the model it writes has the demo's tokenizer and shape, and its whole flow runs here on the
CPU (`--cpu`) with every check passing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import gguf
import pytest

from bench.gpu.check import ROOT, cmake_args, ninja_summary
from bench.gpu.measure import vram
from bench.gpu.model import read_shape, save_shape, write_random
from bench.gpu.prepare import prune
from bench.real_model import demo_gguf


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")


def test_prune_keeps_the_build_and_drops_the_rest(tmp_path: Path) -> None:
    source = tmp_path / "sdist"
    kept = ["CMakeLists.txt", "pyproject.toml", "llama_cpp/llama.py",
            "vendor/llama.cpp/CMakeLists.txt", "vendor/llama.cpp/src/llama.cpp",
            "vendor/llama.cpp/ggml/src/ggml-cpu/ops.cpp",
            "vendor/llama.cpp/ggml/src/ggml-cuda/fattn.cu",
            "vendor/llama.cpp/ggml/src/ggml.c",
            "vendor/llama.cpp/vendor/nlohmann/json.hpp"]  # fmt: skip
    dropped = ["docs/index.md", "tests/test_llama.py", ".git/HEAD",
               "vendor/llama.cpp/models/ggml-vocab-llama.gguf",
               "vendor/llama.cpp/tools/server/x.cpp",
               "vendor/llama.cpp/ggml/src/ggml-vulkan/v.cpp",
               "vendor/llama.cpp/ggml/src/ggml-metal/m.m", "vendor/llama.cpp/.git"]  # fmt: skip
    for name in kept + dropped:
        touch(source / name)
    target = prune(source, tmp_path / "pruned")
    present = {str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()}
    assert present == set(kept)


def test_cmake_options_name_what_the_toolkit_lacks(tmp_path: Path) -> None:
    cublas = tmp_path / "nvidia" / "cu13"
    touch(cublas / "lib" / "libcublas.so.13")
    touch(cublas / "lib" / "libcublasLt.so.13")
    (cublas / "include").mkdir()
    plain = cmake_args("90", None, Path("/usr/lib/libcuda.so.1"))
    assert "-DCMAKE_CUDA_ARCHITECTURES=90" in plain and "-DGGML_CUDA=on" in plain
    assert "-DCUDA_cuda_driver_LIBRARY=/usr/lib/libcuda.so.1" in plain
    assert not any("cublas" in arg for arg in plain)
    borrowed = cmake_args("90", cublas, None)
    assert f"-DCUDA_cublas_LIBRARY={cublas}/lib/libcublas.so.13" in borrowed
    assert f"-DCMAKE_CUDA_FLAGS=-I{cublas}/include" in borrowed
    assert "-DGGML_CUDA_NO_VMM=on" in borrowed  # no driver library to link against


def test_the_build_summary_counts_work_and_names_the_slowest_units() -> None:
    log = (
        "# ninja log v7\n"
        "0\t1500\t0\tggml-cuda.dir/fattn.cu.o\th\n"
        "0\t400\t0\tggml-base.dir/ggml.c.o\th\n"
        "400\t3400\t0\tggml-cuda.dir/mmq.cu.o\th\n"
        "0\t500\t0\tggml-base.dir/ggml.c.o\th\n"  # rebuilt: the later entry counts
    )
    summary = ninja_summary(log, slowest=2)
    assert summary == {"steps": 3, "work_s": 5.0,
                       "slowest": {"mmq.cu.o": 3.0, "fattn.cu.o": 1.5}}  # fmt: skip


def test_vram_sets_each_loads_measured_drop_against_its_footprint() -> None:
    held = {"designed": 70, "random": 900, "random-copy": 800}
    found = vram([140_000, 139_400, 138_300, 137_300], held)
    assert found["context_and_designed_mb"] == 600 and found["first_copy_mb"] == 1100
    assert found["second_copy_mb"] == 1000
    assert found["second_copy_measured_over_accounted"] == 1.25
    assert vram([None, None, None, None], held) == {"measured": None, "accounted_mb": held}


@pytest.mark.real_model
def test_the_random_model_has_the_demo_models_shape(tmp_path: Path) -> None:
    shape = read_shape(demo_gguf())
    written = read_shape(write_random(shape, tmp_path / "random.gguf"))
    fields = {f["key"]: f["value"] for f in shape["fields"]}
    again = {f["key"]: f["value"] for f in written["fields"]}
    assert again.pop("general.file_type") == gguf.LlamaFileType.MOSTLY_F16
    fields.pop("general.file_type")
    assert again == fields  # vocabulary, merges, template, hyperparameters
    assert written["tensors"] == shape["tensors"]


def check_on_cpu(tmp_path: Path, *options: str) -> tuple[int, dict[str, Any], str]:
    """`bench.gpu.check --cpu` on a folder prepared with the demo's shape: its exit code,
    what it measured, and its output."""
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    save_shape(demo_gguf(), prepared / "model-shape.json")
    run = subprocess.run(
        [sys.executable, "-m", "bench.gpu.check", "--cpu", "--prepared", str(prepared),
         "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"), *options],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    result = json.loads((tmp_path / "out" / "gpu-check.json").read_text())
    return run.returncode, result["measured"], run.stdout[-3000:] + run.stderr[-3000:]


@pytest.mark.real_model
def test_the_check_runs_its_whole_flow_on_the_cpu(tmp_path: Path) -> None:
    code, measured, output = check_on_cpu(tmp_path, "--streams", "1,2", "--tokens", "6")
    assert code == 0, output
    assert measured["failed"] == [] and measured["skipped"] == []
    assert set(measured["checks"]) == {"cuda_build", "cpu_device", "designed_answer"}
    for streams in ("1", "2"):
        row = measured["throughput"][streams]
        assert row["cortex"]["tok_s"] > 0 and row["direct"]["tok_s"] > 0 and row["ratio"] > 0
    assert measured["throughput"]["2"]["cortex"]["tokens"] == 2 * 6
    assert set(measured["vram"]["accounted_mb"]) == {"designed", "random", "random-copy"}


@pytest.mark.real_model
def test_past_its_budget_the_check_skips_what_is_left_and_still_writes_it(tmp_path: Path) -> None:
    code, measured, output = check_on_cpu(tmp_path, "--budget-s", "0")
    assert code == 1, output
    assert measured["skipped"] == ["write_model"] and measured["failed"] == []
