"""Reading a GGUF file's metadata (the key/value header) without loading the model.

Only the header is read; large arrays (the vocabulary) are skipped, not decoded, so this
takes milliseconds even for big models. `read_header` also reads the tensor table that
follows the metadata (names, shapes, where the weights begin).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

_SCALARS: dict[int, str] = {
    0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
    10: "<Q", 11: "<q", 12: "<d",
}  # fmt: skip
_STRING, _ARRAY = 8, 9
# Arrays up to this length are decoded (per-layer values); longer ones are skipped.
_MAX_ARRAY = 4096
# Where the weights start is aligned to this (unless general.alignment says otherwise).
_ALIGNMENT = 32


class GGUFError(ValueError):
    pass


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int, ...]
    kind: int  # ggml type

    @property
    def elements(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Header:
    metadata: dict[str, Any]
    tensors: list[Tensor]
    data_start: int  # the offset of the first tensor's data: the header is the bytes before


def _read(stream: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = stream.read(size)
    if len(data) != size:
        raise GGUFError("truncated GGUF header")
    return struct.unpack(fmt, data)[0]


# No key or string value in a real header comes near this; a larger length is a corrupt
# file, not a read of gigabytes.
_MAX_STRING = 1 << 26


def _string(stream: BinaryIO) -> str:
    length = _read(stream, "<Q")
    if length > _MAX_STRING:
        raise GGUFError(f"a GGUF header string of {length} bytes: the file is corrupt")
    data = stream.read(length)
    if len(data) != length:
        raise GGUFError("truncated GGUF header")
    return data.decode("utf-8", errors="replace")


def _value(stream: BinaryIO, kind: int) -> Any:
    if kind in _SCALARS:
        return _read(stream, _SCALARS[kind])
    if kind == _STRING:
        return _string(stream)
    if kind != _ARRAY:
        raise GGUFError(f"unknown GGUF value type {kind}")
    item_kind, count = _read(stream, "<I"), _read(stream, "<Q")
    if count <= _MAX_ARRAY:
        return [_value(stream, item_kind) for _ in range(count)]
    if item_kind in _SCALARS:
        stream.seek(struct.calcsize(_SCALARS[item_kind]) * count, 1)
    else:
        for _ in range(count):
            _value(stream, item_kind)
    return None


def _metadata(stream: BinaryIO, path: str | Path) -> tuple[int, dict[str, Any]]:
    """The tensor count and every metadata key, the stream left after them."""
    if stream.read(4) != b"GGUF":
        raise GGUFError(f"{path} is not a GGUF file")
    version = _read(stream, "<I")
    if version < 2:
        raise GGUFError(f"GGUF version {version} is not supported")
    tensor_count = _read(stream, "<Q")
    kv_count = _read(stream, "<Q")
    return tensor_count, {
        _string(stream): _value(stream, _read(stream, "<I")) for _ in range(kv_count)
    }


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Every key of the GGUF header with its value (long arrays as None)."""
    with open(path, "rb") as stream:
        return _metadata(stream, path)[1]


def read_header(path: str | Path) -> Header:
    """The metadata, the tensor table and where the tensors' data begins."""
    with open(path, "rb") as stream:
        tensor_count, metadata = _metadata(stream, path)
        tensors = []
        for _ in range(tensor_count):
            name = _string(stream)
            dims = _read(stream, "<I")
            shape = tuple(_read(stream, "<Q") for _ in range(dims))
            kind = _read(stream, "<I")
            _read(stream, "<Q")  # offset within the data
            tensors.append(Tensor(name, shape, kind))
        alignment = metadata.get("general.alignment", _ALIGNMENT)
        if not isinstance(alignment, int) or alignment <= 0:
            alignment = _ALIGNMENT
        return Header(metadata, tensors, -(-stream.tell() // alignment) * alignment)
