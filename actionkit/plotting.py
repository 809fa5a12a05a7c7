"""matplotlib for the PNG plots (training curves, confusion matrices, timelines), imported on first use."""

from __future__ import annotations

from typing import Any

from actionkit.errors import ActionkitError


def pyplot(purpose: str) -> Any:
    """``matplotlib.pyplot`` on the Agg backend (files only: no display, no GUI toolkit).

    matplotlib comes with the ``train`` extra; without it, an :class:`ActionkitError` names ``purpose``
    (the work that needed it) and the install command.
    """
    try:
        import matplotlib
    except ImportError:
        raise ActionkitError(f"{purpose} needs matplotlib: pip install 'actionkit[train]' "
                             "(or pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
