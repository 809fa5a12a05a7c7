"""OpenVINO IR from the exported ONNX: ``model.xml`` (fp32) and, calibrated on real clips,
``model.int8.xml`` (INT8 post-training quantization by NNCF).

Each IR carries config.json's content, its precision and the ONNX's clip-length rule in its runtime
info, so ``Recognizer.from_pretrained("model.int8.xml")`` needs nothing beside it. Both files of an IR
(``.xml`` and ``.bin``) are written under temporary names and renamed, so an interrupted export never
leaves a half-written model.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

import torch

from actionkit.data.transforms import to_model_input
from actionkit.hub import ModelConfig
from actionkit.predict.openvino_runtime import (
    INSTALL_HINT,
    RT_INFO_CLIP_LEN_MULTIPLE,
    RT_INFO_CONFIG,
    RT_INFO_PRECISION,
    OpenVinoUnavailable,
    import_openvino,
)


def import_nncf() -> ModuleType:
    """The nncf module, or an :class:`OpenVinoUnavailable` naming the extra to install."""
    try:
        import nncf  # noqa: PLC0415  (optional: imported only when quantizing)
    except ImportError:
        raise OpenVinoUnavailable(INSTALL_HINT.replace("OpenVINO is", "NNCF is")) from None
    return nncf


def onnx_to_openvino(onnx_path: Path) -> Any:
    """The ``openvino.Model`` of an exported ONNX file (weights kept in fp32)."""
    return import_openvino().Core().read_model(str(onnx_path))


def quantize_int8(model: Any, clips: Sequence[torch.Tensor], value_range: tuple[float, float]) -> Any:
    """``model`` quantized to INT8 by NNCF's post-training quantization, its activation ranges
    calibrated on ``clips`` (each 1×T×3×H×W uint8, preprocessed as the config says; the value range is
    applied here, as the backends apply it)."""
    nncf = import_nncf()

    def model_input(clip: torch.Tensor) -> Any:
        return to_model_input(clip, value_range).numpy()

    return nncf.quantize(model, nncf.Dataset(list(clips), model_input), subset_size=len(clips))


def save_openvino(model: Any, path: Path, config: ModelConfig, precision: str, clip_len_multiple: int) -> Path:
    """Write ``model`` as ``path`` (``.xml``) and its ``.bin``, with actionkit's runtime info; atomically."""
    ov = import_openvino()
    model.set_rt_info(json.dumps(config.to_dict()), list(RT_INFO_CONFIG))
    model.set_rt_info(precision, list(RT_INFO_PRECISION))
    model.set_rt_info(str(clip_len_multiple), list(RT_INFO_CLIP_LEN_MULTIPLE))
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent))
    try:
        staged = staging / path.name
        ov.save_model(model, str(staged), compress_to_fp16=False)
        os.replace(staged.with_suffix(".bin"), path.with_suffix(".bin"))
        os.replace(staged, path)
    finally:
        for leftover in staging.iterdir():
            leftover.unlink()
        staging.rmdir()
    return path
