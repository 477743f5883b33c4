"""What a request asks of its model's residency (Ollama's keep_alive), carried out: a pin
before the answer, an unload after it, or — with nothing to run — only a load or an unload.

An unload changes the fleet for everyone, so it takes an admin key, as the operator's own
routes do. A pin does too, but a negative keep_alive without one is no refusal: clients send
-1 with every request (Zed does) and Ollama takes it from anyone, so it is taken as what
happens anyway — the model stays loaded until the scheduler needs its room. A plain load is
what any request may cause.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from litestar import MediaType, Request, Response
from litestar.background_tasks import BackgroundTask
from litestar.response import Stream

from cortex_core.config import GatewaySettings
from cortex_gateway.auth import presented_key, require_admin
from cortex_gateway.errors import ApiError
from cortex_gateway.gateway_state import Gateway
from cortex_gateway.keep_alive import Residency
from cortex_wire.subjects import SCHED_PIN, SCHED_UNLOAD, SCHED_UNPIN

log = structlog.get_logger("gateway")
UNLOADING = "keep_alive 0 unloads it"


def granted(wanted: Residency, key: str, settings: GatewaySettings) -> Residency:
    """What a request with `key` gets of what it asked (pure): a pin only with an admin key
    (without one, what happens anyway); an unload with one, or a 401/403 saying why."""
    if wanted is Residency.UNLOAD:
        require_admin(key, settings.api_keys, settings.admin_keys, UNLOADING)
    elif wanted is Residency.PIN:
        try:
            require_admin(key, settings.api_keys, settings.admin_keys)
        except ApiError:
            return Residency.AS_SCHEDULED
    return wanted


async def before(
    gateway: Gateway,
    request: Request[Any, Any, Any],
    model: str,
    wanted: Residency,
    only: Callable[[str], dict[str, Any]] | None = None,
) -> Response[Any] | None:
    """Check and carry out what comes before the answer. With nothing to run (`only`),
    load or unload the model and return the whole response, `only`'s body."""
    wanted = granted(wanted, presented_key(request.headers), gateway.settings)
    if wanted is Residency.PIN:
        log.info("pinned_by_request", model=model, detail=await gateway.operate(SCHED_PIN, model))
    if only is None:
        return None
    if wanted is Residency.UNLOAD:
        detail = await unload(gateway, model)
        log.info("unloaded_by_request", model=model, detail=detail)
        done = "unload"
    else:
        log.info("loaded_by_request", model=model, node=await gateway.make_ready(model))
        done = "load"
    return Response(only(done), media_type=MediaType.JSON)


async def unload(gateway: Gateway, model: str) -> str:
    """keep_alive 0: unload the model, pinned or not (as Ollama does: a keep_alive -1 before
    it pinned it, and nothing else an Ollama client sends could undo that)."""
    unpinned = await gateway.operate(SCHED_UNPIN, model)
    return f"{unpinned}; {await gateway.operate(SCHED_UNLOAD, model)}"


Sent = TypeVar("Sent", Response[Any], Stream)


def after(gateway: Gateway, model: str, wanted: Residency, response: Sent) -> Sent:
    """`response`, set to unload the model once it is sent (a stream: once it ends) when
    the request asked for that."""
    if wanted is not Residency.UNLOAD:
        return response

    async def unload_after() -> None:
        try:
            detail = await unload(gateway, model)
        except ApiError as error:  # the answer is out; only the unload failed
            log.warning("unload_after_answer_failed", model=model, error=error.message)
        else:
            log.info("unloaded_after_answer", model=model, detail=detail)

    response.background = BackgroundTask(unload_after)
    return response
