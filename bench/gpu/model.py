"""The GPU check's model: the demo GGUF's shape with random weights.

The demo GGUF (~98 MB) cannot travel to the GPU machine (64 MiB in all), so `read_shape`
takes what makes it that model — every metadata field (architecture, hyperparameters,
vocabulary, merges, chat template) and every tensor's name and dimensions — into a few MB
of JSON here, and `write_random` writes a GGUF of that shape there: the same tokenizer and
template, the same work per token, F16 matrices with random values. Its text is noise,
which is all a throughput and offload check needs; the designed tiny model checks answers.

The rows of control tokens (end of turn, end of text) are zero in the output matrix, so
their logit is 0 while the largest of ~50k random logits is positive: greedy decoding never
stops early, and every run generates the tokens it asks for.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf
import numpy as np

# Header fields the writer produces itself.
_WRITER_OWN = ("GGUF.", "general.alignment")


def read_shape(path: Path) -> dict[str, Any]:
    """The model's metadata fields and tensor shapes (no weights), as JSON-ready data."""
    reader = gguf.GGUFReader(path)
    fields = []
    for field in reader.fields.values():
        if field.name.startswith(_WRITER_OWN):
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        value = field.contents()
        fields.append({"key": field.name, "type": kind.name, "sub": sub and sub.name,
                       "value": value})  # fmt: skip
    tensors = [{"name": t.name, "ne": [int(n) for n in t.shape]} for t in reader.tensors]
    return {"source": path.name, "fields": fields, "tensors": tensors}


def write_random(shape: dict[str, Any], path: Path, seed: int = 0) -> Path:
    """A GGUF of `shape` (from read_shape) with random F16 matrices and unit norms."""
    fields = {f["key"]: f for f in shape["fields"]}
    writer = gguf.GGUFWriter(path, fields["general.architecture"]["value"])
    for key, field in fields.items():
        if key == "general.architecture":
            continue  # the writer has it already
        if key == "general.file_type":
            field = {**field, "value": int(gguf.LlamaFileType.MOSTLY_F16)}
        sub = gguf.GGUFValueType[field["sub"]] if field["sub"] else None
        writer.add_key_value(key, field["value"], gguf.GGUFValueType[field["type"]], sub)
    types = fields.get("tokenizer.ggml.token_type", {}).get("value", [])
    control = [i for i, t in enumerate(types) if t == gguf.TokenType.CONTROL]
    rng = np.random.default_rng(seed)
    names = {t["name"] for t in shape["tensors"]}
    for tensor in shape["tensors"]:
        dims = tuple(reversed(tensor["ne"]))  # GGUF lists the fastest dimension first
        if len(dims) == 1:
            data = np.ones(dims, dtype=np.float32)  # norms: keep activations in range
        else:
            data = (rng.standard_normal(dims, dtype=np.float32) * 0.02).astype(np.float16)
            # The output matrix (the embeddings when the model ties them) scores tokens.
            scores = tensor["name"] == "output.weight" or (
                tensor["name"] == "token_embd.weight" and "output.weight" not in names
            )
            if scores:
                data[control] = 0
        writer.add_tensor(tensor["name"], data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def save_shape(model: Path, target: Path) -> Path:
    target.write_text(json.dumps(read_shape(model)))
    return target


def load_shape(source: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(source.read_text())
    return loaded
