"""lm-evaluation-harness against the stack, as an evaluator runs it: `lm_eval --model
local-completions` scores a small multiple-choice task (a JSON file here, no downloads)
from prompt log probabilities, tokenizing through the gateway's /tokenize.

The model is designed: after "Answer:" its one likely token is " yes", so it picks "yes"
for every item and its accuracy is exactly the share of items whose answer is yes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.stack import stack_on_own_bus
from tests.support.tiny_gguf import build_tiny_gguf

# "no" comes first: a scorer that told the choices apart by nothing would pick it.
CHOICES = ["no", "yes"]
ITEMS = [
    ("Is the sky blue?", 1),
    ("Is water wet?", 1),
    ("Is fire cold?", 0),
    ("Is snow white?", 1),
]
TASK = """\
task: cortex_yes_no
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}} Answer:"
doc_to_choice: ["no", "yes"]
doc_to_target: label
metric_list:
  - metric: acc
"""


@pytest.fixture
def task_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "tasks"
    folder.mkdir()
    data = folder / "items.jsonl"
    data.write_text("".join(json.dumps({"question": q, "label": a}) + "\n" for q, a in ITEMS))
    (folder / "cortex_yes_no.yaml").write_text(TASK.format(data=data))
    return folder


def test_lm_eval_scores_a_multiple_choice_task(tmp_path: Path, task_folder) -> None:
    model = build_tiny_gguf(tmp_path / "yes.gguf", (" yes",), start=":")
    output = tmp_path / "results"
    # A bus of its own: the fleet serves this one model, so lm-eval's tokenizer calls,
    # which name no model, go to it.
    served = [{"id": "yes", "path": str(model.path), "n_ctx": 512}]
    with stack_on_own_bus(tmp_path, served, node="eval-neuron") as stack:
        run = subprocess.run(
            [
                sys.executable, "-m", "lm_eval", "run",
                "--model", "local-completions",
                "--model_args",
                f"model=yes,base_url={stack.base_url}/v1/completions,tokenizer_backend=remote,"
                "max_retries=1,max_length=512",
                "--tasks", "cortex_yes_no",
                "--include_path", str(task_folder),
                "--output_path", str(output),
                # Several prompts a request: the batches lm-eval sends (a list of prompts).
                "--batch_size", "4",
            ],
            capture_output=True, text=True, timeout=600,
            env={**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"},
        )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    (results_file,) = output.rglob("results_*.json")
    results = json.loads(results_file.read_text())["results"]["cortex_yes_no"]
    yes = sum(CHOICES[answer] == "yes" for _, answer in ITEMS) / len(ITEMS)
    assert results["acc,none"] == pytest.approx(yes)
