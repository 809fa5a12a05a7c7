"""Model definitions (pure PyTorch: no files, no CLI, no Hub)."""

from actionkit.models.i3d import I3D, I3DConfig, I3DIntermediates
from actionkit.models.rev2net import Rev2Net, Rev2NetConfig, Rev2NetOutput

__all__ = ["I3D", "I3DConfig", "I3DIntermediates", "Rev2Net", "Rev2NetConfig", "Rev2NetOutput"]
