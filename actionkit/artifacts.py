"""The artifact formats a model folder can hold, in one table: name, file, where it runs, options.

Every file name of a model or export folder is defined here and nowhere else: the Hub folder code,
the prediction backends and the exporter all read it from this table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

CONFIG_FILE = "config.json"  # beside every artifact: architecture, labels and the preprocessing contract
CARD_FILE = "README.md"  # the model card


@dataclass(frozen=True)
class ArtifactFormat:
    """One row of the table. ``options`` maps each export option the format accepts to what it means;
    ``variants`` maps an option to the extra file it writes; ``extra`` is the pip extra its runtime
    needs, when optional."""

    name: str
    filename: str
    devices: tuple[str, ...]
    options: Mapping[str, str] = field(default_factory=dict)
    variants: Mapping[str, str] = field(default_factory=dict)
    extra: str | None = None

    @property
    def suffix(self) -> str:
        return self.filename[self.filename.rindex("."):]


FORMATS: dict[str, ArtifactFormat] = {
    f.name: f for f in (
        ArtifactFormat("torch", "model.safetensors", ("cpu", "cuda")),
        ArtifactFormat("onnx", "model.onnx", ("cpu", "cuda"), {
            "opset": "ONNX opset, 17-20 (TensorRT 10 reads up to 20)",
            "dynamic_clip_len": "the time axis is dynamic too (clip lengths that are multiples of 8)",
            "fp16": "also write model.fp16.onnx (fp16 weights and compute, float32 input and output)",
        }, variants={"fp16": "model.fp16.onnx"}, extra="onnx"),
        ArtifactFormat("tensorrt", "model.engine", ("cuda",), {
            "fp16": "fp16 kernels allowed (default) or fp32 only",
            "min_batch": "smallest batch of the optimisation profile",
            "opt_batch": "batch the engine is tuned for",
            "max_batch": "largest batch of the optimisation profile",
            "workspace_gib": "builder workspace limit in GiB",
        }, extra="tensorrt"),
        ArtifactFormat("openvino", "model.xml", ("cpu",), {
            "int8": "also write model.int8.xml: INT8 post-training quantization (NNCF), calibrated on real clips",
            "calibration": "videos to calibrate INT8 on: a dataset in any --data layout (its train split) or a "
                           "folder of videos",
            "calibration_clips": "clips to calibrate on (default 32)",
        }, variants={"int8": "model.int8.xml"}, extra="openvino"),
    )
}

WEIGHTS_FILE = FORMATS["torch"].filename
ONNX_FILE = FORMATS["onnx"].filename
ONNX_FP16_FILE = FORMATS["onnx"].variants["fp16"]
ENGINE_FILE = FORMATS["tensorrt"].filename
OPENVINO_FILE = FORMATS["openvino"].filename  # with its weights beside it in model.bin
OPENVINO_INT8_FILE = FORMATS["openvino"].variants["int8"]  # and model.int8.bin
