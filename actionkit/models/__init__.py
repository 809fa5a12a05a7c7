"""Model definitions (pure PyTorch: no files, no CLI, no Hub)."""

from actionkit.models.i3d import I3D, I3DConfig, I3DIntermediates

__all__ = ["I3D", "I3DConfig", "I3DIntermediates"]
