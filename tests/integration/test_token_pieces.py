"""Token bytes come out whole however long the token (llama-cpp-python's detokenize drops
pieces over 32 bytes)."""

from pathlib import Path

import llama_cpp

from cortex_neuron.pieces import TokenPieces
from tests.support.tiny_gguf import build_tiny_gguf

LONG = '{"name":"get_weather","arguments":{"city":"Paris"}}'


def test_long_token_pieces_are_complete(tmp_path: Path) -> None:
    tiny = build_tiny_gguf(tmp_path / "long.gguf", (LONG, "short", "é" * 20))
    llm = llama_cpp.Llama(model_path=str(tiny.path), verbose=False, n_ctx=64)
    pieces = TokenPieces(llm._model.vocab)
    assert [pieces(t) for t in tiny.reply_ids] == [LONG.encode(), b"short", ("é" * 20).encode()]
    assert llm.detokenize([tiny.reply_ids[0]]) != LONG.encode()  # the library's own falls short
    llm.close()
