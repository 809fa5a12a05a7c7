"""Optional packages of the ``serve`` extra (Ray, FastAPI, uvicorn), imported where they are used."""

from __future__ import annotations

import importlib
from typing import Any

from actionkit.errors import ActionkitError


def import_extra(module: str, hint: str) -> Any:
    """Import ``module``, or raise :class:`ActionkitError` with ``hint`` (which names the extra to install)
    and the missing module, in one line."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ActionkitError(f"{hint} ({module} is missing)") from None
