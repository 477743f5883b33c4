"""Model-load progress from llama.cpp, per engine thread.

llama.cpp reports load progress through `llama_model_params.progress_callback`, but
llama-cpp-python's `Llama()` builds those params itself and offers no way in. So once, at
import, the params factory it calls is wrapped to add one process-wide callback, which
dispatches to whatever reporter the calling (engine) thread registered. A reporter that
returns False aborts the load (how a load is cancelled).
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import llama_cpp
import llama_cpp.llama_cpp as llama_c

Reporter = Callable[[float], bool]
_reporters: dict[int, Reporter] = {}


@llama_c.llama_progress_callback  # type: ignore[misc]
def _on_progress(progress: float, _user_data: ctypes.c_void_p) -> bool:
    reporter = _reporters.get(threading.get_ident())
    if reporter is None:
        return True
    try:
        return bool(reporter(float(progress)))
    except Exception:  # never let a reporting problem abort a load
        return True


def _install() -> None:
    original: Any = llama_c.llama_model_default_params
    if getattr(original, "_cortex_progress", False):
        return

    def with_progress() -> Any:
        params = original()
        params.progress_callback = _on_progress
        return params

    with_progress._cortex_progress = True  # type: ignore[attr-defined]
    llama_c.llama_model_default_params = with_progress
    llama_cpp.llama_model_default_params = with_progress


_install()


@contextmanager
def reporting(reporter: Reporter) -> Iterator[None]:
    """Send this thread's load progress (0.0-1.0) to `reporter` while inside the block."""
    _reporters[threading.get_ident()] = reporter
    try:
        yield
    finally:
        _reporters.pop(threading.get_ident(), None)
