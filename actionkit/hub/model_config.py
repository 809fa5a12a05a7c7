"""config.json: the architecture, the labels, the preprocessing contract and the provenance of a model."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from actionkit.config import PreprocessConfig
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
        return cls(
            model=I3DConfig.from_dict(data["model"]),
            id2label={int(i): str(name) for i, name in data["id2label"].items()},
            preprocessing=PreprocessConfig(**data.get("preprocessing", {})),
            source=dict(data.get("source", {})),
            license=str(data.get("license", "other")),
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "ModelConfig":
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise CheckpointError(path, "config.json is missing") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise CheckpointError(path, f"invalid config.json ({type(e).__name__}: {e})") from None
