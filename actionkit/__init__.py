"""actionkit: video action recognition from training to deployment (I3D, Rev2Net, self-distillation).

The packages follow the product's path: :mod:`actionkit.train` (fine-tuning and Rev2Net training),
:mod:`actionkit.export` (ONNX, TensorRT), :mod:`actionkit.predict` (:class:`Recognizer`), with
:mod:`actionkit.hub` (model folders and the Hugging Face Hub), :mod:`actionkit.models` (pure PyTorch)
and :mod:`actionkit.data` (decoding and datasets) beneath them.
"""

from actionkit.config import PreprocessConfig
from actionkit.errors import (
                              ActionkitError,
                              CheckpointError,
                              CorruptVideoError,
                              EmptyVideoError,
                              ModelNotFoundError,
                              NotAVideoError,
                              VideoError,
                              VideoNotFoundError,
)
from actionkit.hub import I3D, ModelConfig
from actionkit.models import I3DConfig
from actionkit.predict import Prediction, Recognizer, VideoResult

__version__ = "0.1.0"

__all__ = [
    "I3D", "I3DConfig", "ModelConfig", "PreprocessConfig", "Recognizer", "Prediction", "VideoResult",
    "ActionkitError", "VideoError", "VideoNotFoundError", "NotAVideoError", "CorruptVideoError",
    "EmptyVideoError", "CheckpointError", "ModelNotFoundError", "__version__",
]
