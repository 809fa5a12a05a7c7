"""The optional ``tensorrt`` package, imported only where an engine is built or run."""

from __future__ import annotations

from types import ModuleType

from actionkit.errors import ActionkitError

INSTALL_HINT = ("TensorRT is not installed: pip install 'actionkit[tensorrt]' (NVIDIA's tensorrt wheels; "
                "needs an NVIDIA GPU and driver)")


class TensorRTUnavailable(ActionkitError):
    """tensorrt cannot be imported, or no CUDA GPU is present."""


def import_tensorrt() -> ModuleType:
    """The tensorrt module, or a :class:`TensorRTUnavailable` saying what to install."""
    try:
        import tensorrt  # noqa: PLC0415  (optional, heavy: imported only when used)
    except ImportError:
        raise TensorRTUnavailable(INSTALL_HINT) from None
    return tensorrt
