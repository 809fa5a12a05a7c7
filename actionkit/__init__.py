"""actionkit: video action recognition from training to deployment (I3D, Rev2Net, self-distillation)."""

from actionkit.config import ModelConfig, PreprocessConfig
from actionkit.errors import (ActionkitError, CheckpointError, CorruptVideoError, EmptyVideoError,
                              ModelNotFoundError, NotAVideoError, VideoError, VideoNotFoundError)
from actionkit.models import I3D, I3DConfig
from actionkit.predict import Prediction, Recognizer, VideoResult

__version__ = "0.1.0"

__all__ = [
    "I3D", "I3DConfig", "ModelConfig", "PreprocessConfig", "Recognizer", "Prediction", "VideoResult",
    "ActionkitError", "VideoError", "VideoNotFoundError", "NotAVideoError", "CorruptVideoError",
    "EmptyVideoError", "CheckpointError", "ModelNotFoundError", "__version__",
]
