"""The config an exported ONNX file carries in its metadata, read without running the model."""

from __future__ import annotations

import json
from pathlib import Path

from actionkit.errors import ActionkitError
from actionkit.hub.model_config import ModelConfig

METADATA_CONFIG = "actionkit.config"  # the metadata key holding config.json's content


def read_onnx_config(path: Path) -> ModelConfig:
    """The :class:`~actionkit.hub.ModelConfig` stored in an exported ONNX file's metadata.
    Raises :class:`~actionkit.errors.ActionkitError` naming the file when it has none."""
    import onnx  # the onnx extra; imported where used

    model = onnx.load(str(path), load_external_data=False)
    entries = {p.key: p.value for p in model.metadata_props}
    if METADATA_CONFIG not in entries:
        raise ActionkitError(f"{path}: no '{METADATA_CONFIG}' metadata; not an actionkit export "
                             "(export it with actionkit, or pass its config.json)")
    return ModelConfig.from_dict(json.loads(entries[METADATA_CONFIG]))
