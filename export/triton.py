"""A Triton Inference Server model repository entry for the exported ONNX:
``triton/<name>/config.pbtxt``, ``triton/<name>/labels.txt`` and ``triton/<name>/1/model.onnx`` (a hard
link to the export's ``model.onnx`` where the filesystem allows, else a copy).

Serve with ``tritonserver --model-repository DIR/triton``; the client sends ``video`` float32
3×T×H×W per request item (preprocessed as the ONNX metadata says) and reads ``logits``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from actionkit.artifacts import ONNX_FILE
from actionkit.files import write_text_atomically
from actionkit.hub import ModelConfig


def config_pbtxt(name: str, config: ModelConfig, max_batch: int, dynamic_clip_len: bool) -> str:
    pre = config.preprocessing
    frames = -1 if dynamic_clip_len else pre.clip_len
    return f"""name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: {max_batch}
input [
  {{
    name: "video"
    data_type: TYPE_FP32
    dims: [ {config.model.in_channels}, {frames}, {pre.crop_size}, {pre.crop_size} ]
  }}
]
output [
  {{
    name: "logits"
    data_type: TYPE_FP32
    dims: [ {len(config.labels)} ]
    label_filename: "labels.txt"
  }}
]
dynamic_batching {{ }}
"""


def write_triton_repository(onnx_path: Path, config: ModelConfig, out_dir: Path, name: str = "i3d",
                            max_batch: int = 8, dynamic_clip_len: bool = False) -> Path:
    """Write the repository entry under ``out_dir/triton/name``; returns its config.pbtxt path."""
    model_dir = Path(out_dir) / "triton" / name
    version_dir = model_dir / "1"
    version_dir.mkdir(parents=True, exist_ok=True)
    target = version_dir / ONNX_FILE
    target.unlink(missing_ok=True)
    try:
        os.link(onnx_path, target)
    except OSError:
        shutil.copyfile(onnx_path, target)
    write_text_atomically(model_dir / "labels.txt", "\n".join(config.labels) + "\n")
    return write_text_atomically(model_dir / "config.pbtxt", config_pbtxt(name, config, max_batch, dynamic_clip_len))
