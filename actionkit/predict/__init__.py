"""``actionkit.predict``: videos in, labels out, on any backend.

- :class:`Recognizer` (the entry point): batched prediction over files, folders or frame arrays,
  :meth:`Recognizer.timeline` for long videos and :meth:`Recognizer.stream` for live sources;
- :class:`Prediction`, :class:`VideoResult`: what :meth:`Recognizer.predict` returns;
- :class:`Timeline`, :class:`Segment`, :class:`WindowPrediction`, :class:`StreamPrediction`: what the
  timeline and the stream return;
- :class:`ClipScorer`: the protocol timelines and streams score clips through;
- :mod:`~actionkit.predict.backends`: torch, ONNX Runtime and TensorRT behind one call.
"""

from actionkit.predict.backends import (
           BACKENDS,
           Backend,
           cpu_has_bf16_matmul,
           resolve_precision,
)
from actionkit.predict.clip_scorer import ClipScorer
from actionkit.predict.recognizer import Prediction, Recognizer, VideoResult
from actionkit.predict.stream import StreamPrediction
from actionkit.predict.timeline_result import Segment, Timeline, WindowPrediction

__all__ = ["BACKENDS", "Backend", "ClipScorer", "Prediction", "Recognizer", "Segment", "StreamPrediction",
           "Timeline", "VideoResult", "WindowPrediction", "cpu_has_bf16_matmul", "resolve_precision"]
