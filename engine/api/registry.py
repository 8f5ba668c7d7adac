"""Operation handlers register here by operation name.

A handler takes the request context and the validated input (a dict shaped like the
operation's input shape) and returns a dict shaped like its output shape; the dispatcher
drops anything the output shape does not define.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from functools import cache
from typing import Any

from engine.api.context import RequestContext

Handler = Callable[[RequestContext, dict[str, Any]], dict[str, Any]]

_HANDLERS: dict[str, Handler] = {}


def operation(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        if name in _HANDLERS:
            raise RuntimeError(f"two handlers for {name}")
        _HANDLERS[name] = fn
        return fn

    return register


@cache
def handlers() -> dict[str, Handler]:
    import engine.api.handlers as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{pkg.__name__}.{info.name}")
    return dict(_HANDLERS)
