"""The bytes of each token, cached per vocabulary.

llama-cpp-python's detokenize uses a 32-byte buffer per token and silently returns nothing
for a longer piece (vocabularies do have them: long whitespace runs, code tokens). Here the
buffer grows to what llama.cpp asks for, and each token's bytes are computed once.
"""

from __future__ import annotations

import ctypes
from typing import Any


def token_piece(vocab: Any, token: int, special: bool = False) -> bytes:
    import llama_cpp

    size = 64
    while True:
        buffer = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_token_to_piece(
            vocab, llama_cpp.llama_token(token), buffer, size, 0, special
        )
        if n >= 0:
            return buffer.raw[:n]
        size = -n  # llama.cpp says how much it needs


class TokenPieces:
    def __init__(self, vocab: Any, special: bool = False) -> None:
        self._vocab = vocab
        self._special = special
        self._cache: dict[int, bytes] = {}

    def __call__(self, token: int) -> bytes:
        piece = self._cache.get(token)
        if piece is None:
            piece = self._cache[token] = token_piece(self._vocab, token, self._special)
        return piece
