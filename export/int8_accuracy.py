"""What INT8 costs in accuracy: fp32 and INT8 OpenVINO models side by side on labelled videos."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from actionkit.hub import ModelConfig
from actionkit.predict import Recognizer
from actionkit.predict.openvino_runtime import OpenVinoBackend


@dataclass(frozen=True)
class Int8Accuracy:
    """Top-1 of the fp32 and the INT8 model on the same ``videos`` labelled videos (counts and shares)."""

    videos: int
    fp32_correct: int
    int8_correct: int
    agreement: int  # videos where both gave the same top-1

    @property
    def fp32_top1(self) -> float:
        return self.fp32_correct / self.videos

    @property
    def int8_top1(self) -> float:
        return self.int8_correct / self.videos

    def to_dict(self) -> dict:
        return {**asdict(self), "fp32_top1": self.fp32_top1, "int8_top1": self.int8_top1}

    def line(self) -> str:
        return (f"validation top-1 on {self.videos} videos: fp32 {100 * self.fp32_top1:.1f}% ({self.fp32_correct}), "
                f"INT8 {100 * self.int8_top1:.1f}% ({self.int8_correct}); same top-1 on {self.agreement}")


def int8_accuracy(fp32_path: Path, int8_path: Path, config: ModelConfig,
                  labelled: list[tuple[Path, str]]) -> Int8Accuracy | None:
    """Predict every labelled video with both OpenVINO models. None when no video's class is one of
    the model's labels (the dataset is not the one the model was trained on)."""
    known = [(video, label) for video, label in labelled if label in config.labels]
    if not known:
        return None
    videos = [str(video) for video, _ in known]
    top1 = {}
    for name, path in (("fp32", fp32_path), ("int8", int8_path)):
        results = Recognizer(OpenVinoBackend(path, config), config).predict(videos, top_k=1)
        top1[name] = [r.top1.label if r.top1 else None for r in results]
    truth = [label for _, label in known]
    return Int8Accuracy(len(known), sum(p == t for p, t in zip(top1["fp32"], truth)),
                        sum(p == t for p, t in zip(top1["int8"], truth)),
                        sum(a == b for a, b in zip(top1["fp32"], top1["int8"])))
