"""A model's dialect: how it writes reasoning and tool calls, which template variables
switch its thinking, and how history goes back into its template — read once at load time
from the GGUF (vocabulary and chat template), never from the model's name."""

from cortex_neuron.dialect.model import ChannelFormat, Dialect, ReasoningFormat, ToolFormat
from cortex_neuron.dialect.parser import (
    CallDelta,
    CallMode,
    OutputParser,
    ParsedCall,
    Piece,
    new_parser,
)
from cortex_neuron.dialect.probe import detect_dialect
from cortex_neuron.dialect.text import marker_texts

__all__ = [
    "CallDelta",
    "CallMode",
    "ChannelFormat",
    "Dialect",
    "OutputParser",
    "ParsedCall",
    "Piece",
    "ReasoningFormat",
    "ToolFormat",
    "detect_dialect",
    "marker_texts",
    "new_parser",
]
