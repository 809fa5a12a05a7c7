"""The config an exported ONNX file carries in its metadata, read without running the model."""

from __future__ import annotations

import json
from pathlib import Path

from actionkit.errors import CheckpointError
from actionkit.hub.model_config import ModelConfig

METADATA_CONFIG = "actionkit.config"  # the metadata key holding config.json's content


def read_onnx_config(path: Path) -> ModelConfig:
    """The :class:`~actionkit.hub.ModelConfig` stored in an exported ONNX file's metadata. Raises
    :class:`~actionkit.errors.CheckpointError` naming the file when it is not a readable ONNX file, has
    no such metadata, or the config there is invalid (checked as config.json is)."""
    import onnx  # the onnx extra; imported where used

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError, OSError, ...: all mean "not a readable ONNX file"
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(path, f"not a readable ONNX file ({reason})") from None
    entries = {p.key: p.value for p in model.metadata_props}
    if METADATA_CONFIG not in entries:
        raise CheckpointError(path, f"no '{METADATA_CONFIG}' metadata; not an actionkit export "
                                    "(export it with actionkit, or pass its config.json)")
    try:
        return ModelConfig.from_dict(json.loads(entries[METADATA_CONFIG]))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(path, f"invalid actionkit config in its metadata: {e}") from None
