"""What each API samples with when a client leaves a parameter out: its own documented
defaults, in one table (OpenAI and Anthropic: temperature 1, top_p 1, no top_k; Ollama:
its Modelfile defaults). llama.cpp's own defaults (0.8 / 0.95 / 40 / 0.05) would silently
narrow what an OpenAI or Anthropic client asked for."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Defaults:
    temperature: float
    top_p: float
    top_k: int  # 0: off
    min_p: float  # 0.0: off
    repeat_penalty: float  # 1.0: off


OPENAI = Defaults(temperature=1.0, top_p=1.0, top_k=0, min_p=0.0, repeat_penalty=1.0)
ANTHROPIC = Defaults(temperature=1.0, top_p=1.0, top_k=0, min_p=0.0, repeat_penalty=1.0)
OLLAMA = Defaults(temperature=0.8, top_p=0.9, top_k=40, min_p=0.0, repeat_penalty=1.1)
