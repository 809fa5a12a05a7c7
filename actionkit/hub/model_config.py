"""config.json: the architecture, the labels, the preprocessing contract and the provenance of a model."""

from __future__ import annotations

import json
import numbers
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from actionkit.config import PreprocessConfig, integer_in_range
from actionkit.errors import CheckpointError
from actionkit.models.i3d import I3DConfig

FORMAT_VERSION = 1


@dataclass
class ModelConfig:
    """Everything in config.json: architecture, labels, preprocessing and provenance."""

    model: I3DConfig = field(default_factory=I3DConfig)
    id2label: dict[int, str] = field(default_factory=dict)
    preprocessing: PreprocessConfig = field(default_factory=PreprocessConfig)
    source: dict[str, Any] = field(default_factory=dict)
    license: str = "other"

    def __post_init__(self) -> None:
        if not self.id2label:
            self.id2label = {i: f"class_{i}" for i in range(self.model.num_classes)}
        if len(self.id2label) != self.model.num_classes:
            raise ValueError(f"{len(self.id2label)} labels for a model with {self.model.num_classes} classes")

    @property
    def labels(self) -> list[str]:
        return [self.id2label[i] for i in range(len(self.id2label))]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "library_name": "actionkit",
            "model": self.model.to_dict(),
            "id2label": {str(i): name for i, name in sorted(self.id2label.items())},
            "preprocessing": {**asdict(self.preprocessing),
                              "value_range": list(self.preprocessing.value_range)},
            "license": self.license,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """The config in ``data`` (config.json's content), every value checked: ``model`` with an integer
        ``num_classes`` in [1, 100000], ``in_channels`` in [1, 64] and ``dropout`` in [0, 1); ``id2label``
        an object whose keys are exactly "0".."N-1" and whose values are strings; ``preprocessing``
        known fields only, checked by :class:`PreprocessConfig`. Raises ``ValueError`` naming the field."""
        if not isinstance(data, dict):
            raise ValueError(f"the file must hold a JSON object, not a {type(data).__name__}")
        for key in ("model", "id2label"):
            if key not in data:
                raise ValueError(f"{key!r} is missing")
        return cls(
            model=_model_section(data["model"]),
            id2label=_id2label(data["id2label"]),
            preprocessing=_preprocessing(data.get("preprocessing", {})),
            source=_object("source", data.get("source", {})),
            license=str(data.get("license", "other")),
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "ModelConfig":
        """config.json at ``path``; anything missing, unreadable or invalid is a
        :class:`~actionkit.errors.CheckpointError` naming ``path`` (``invalid config.json: ...``)."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CheckpointError(path, "config.json is missing") from None
        except OSError as e:
            raise CheckpointError(path, f"cannot read config.json ({e.strerror or e})") from None
        except UnicodeDecodeError:
            raise CheckpointError(path, "invalid config.json: not UTF-8 text") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise CheckpointError(path, f"invalid config.json: not JSON ({e})") from None
        except RecursionError:
            raise CheckpointError(path, "invalid config.json: nested too deeply") from None
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(path, f"invalid config.json: {e}") from None


MAX_CLASSES = 100_000
PREPROCESSING_FIELDS = tuple(f.name for f in fields(PreprocessConfig))


def _object(name: str, value: Any) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be an object, got a {type(value).__name__}")
    return dict(value)


def _model_section(value: Any) -> I3DConfig:
    section = _object("model", value)
    if "num_classes" in section:
        integer_in_range("num_classes", section["num_classes"], 1, MAX_CLASSES)
    if "in_channels" in section:
        integer_in_range("in_channels", section["in_channels"], 1, 64)
    dropout = section.get("dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
    return I3DConfig.from_dict(section)


def _id2label(value: Any) -> dict[int, str]:
    labels = _object("id2label", value)
    expected = {str(i) for i in range(len(labels))}
    if set(labels) != expected:
        odd = sorted(set(labels) - expected)[:3]
        raise ValueError(f"id2label keys must be exactly 0..{len(labels) - 1} (one per class, no gaps), "
                         f"got {', '.join(repr(k) for k in odd)}")
    if not all(isinstance(name, str) for name in labels.values()):
        raise ValueError("id2label values must be strings (the class names)")
    return {int(i): name for i, name in labels.items()}


def _preprocessing(value: Any) -> PreprocessConfig:
    section = _object("preprocessing", value)
    unknown = sorted(set(section) - set(PREPROCESSING_FIELDS))
    if unknown:
        raise ValueError(f"unknown preprocessing field {unknown[0]!r} (known: {', '.join(PREPROCESSING_FIELDS)})")
    return PreprocessConfig(**section)
