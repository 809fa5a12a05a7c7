"""ONNX export of an I3D: input ``video`` (N×3×T×H×W float32), output ``logits`` (N×classes), a dynamic
batch axis, "SAME" padding folded into Conv/MaxPool ``pads``, and the preprocessing contract and labels
in ``metadata_props`` so a consumer needs no other file.

The time axis is fixed at the config's clip length unless ``dynamic_clip_len``: then any clip length
that is a multiple of 8 (and at least 16) gives the PyTorch result. I3D's temporal strides multiply to
8, and for lengths divisible by every stride TF "SAME" pads do not depend on the length, so one graph
with constant pads serves all of them (checked at export time on two lengths).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import onnx
import torch

import actionkit
from actionkit.errors import ActionkitError
from actionkit.files import write_atomically
from actionkit.hub import ModelConfig
from actionkit.models.i3d import I3D
from actionkit.predict.onnx_metadata import METADATA_CONFIG

from .onnx_graph import fold_pads, runtime_pads, set_metadata, unsupported_ops

INPUT_NAME = "video"
OUTPUT_NAME = "logits"
MIN_OPSET, MAX_OPSET = 17, 20
TIME_STRIDE = 8  # product of I3D's temporal strides (Conv3d_1a, MaxPool3d_4a, MaxPool3d_5a)


@dataclass(frozen=True)
class OnnxOptions:
    """``opset`` 17-20; ``dynamic_clip_len``: clip lengths that are multiples of 8 accepted."""

    opset: int = 17
    dynamic_clip_len: bool = False

    def __post_init__(self) -> None:
        if not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise ActionkitError(f"opset {self.opset} is outside {MIN_OPSET}-{MAX_OPSET} "
                                 f"(17 is the lowest with every op used; TensorRT 10 reads up to {MAX_OPSET})")


def input_shape(config: ModelConfig, batch: int = 1, clip_len: int | None = None) -> tuple[int, int, int, int, int]:
    pre = config.preprocessing
    return (batch, config.model.in_channels, clip_len or pre.clip_len, pre.crop_size, pre.crop_size)


def metadata_for(config: ModelConfig, options: OnnxOptions) -> dict[str, object]:
    """What a consumer needs: the preprocessing contract, the labels, and the whole config.json."""
    pre = config.preprocessing
    clip = (f"T a multiple of {TIME_STRIDE}, at least {2 * TIME_STRIDE} (trained with {pre.clip_len})"
            if options.dynamic_clip_len else f"T = {pre.clip_len}")
    low, high = pre.value_range
    return {
        "labels": config.labels,
        "preprocessing": asdict(pre),
        "input": (f"{INPUT_NAME}: float32 N×3×T×{pre.crop_size}×{pre.crop_size} ({clip}), RGB, values in "
                  f"[{low:g}, {high:g}] (uint8 / 255 · {high - low:g} + {low:g}); frames sampled "
                  f"{pre.frame_sampling}" + (f" every {pre.frame_stride}" if pre.frame_sampling == "consecutive" else "")
                  + f", short side resized to {pre.resize_short_side}, centre crop {pre.crop_size}"),
        "output": f"{OUTPUT_NAME}: float32 N×{len(config.labels)}; softmax gives probabilities, index i is labels[i]",
        "clip_len_multiple": str(TIME_STRIDE) if options.dynamic_clip_len else "0",
        METADATA_CONFIG: config.to_dict(),
    }


def to_onnx(model: I3D, config: ModelConfig, options: OnnxOptions = OnnxOptions()) -> onnx.ModelProto:
    """The checked ONNX model of ``model`` (on CPU, eval mode); see the module docstring."""
    clip_len = config.preprocessing.clip_len
    if options.dynamic_clip_len and (clip_len % TIME_STRIDE or clip_len < 2 * TIME_STRIDE):
        raise ActionkitError(f"a dynamic clip length needs the config's clip_len to be a multiple of {TIME_STRIDE} "
                             f"and at least {2 * TIME_STRIDE}; it is {clip_len}")
    model = model.to("cpu").eval()
    example = torch.zeros(input_shape(config, batch=1))
    axes = {0: "batch", 2: "frames"} if options.dynamic_clip_len else {0: "batch"}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter (deprecated but dependency-free) warns about every shape it bakes in;
        # baking them in is the point: pads and pooling sizes become constants.
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), buffer, dynamo=False, opset_version=options.opset,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: {0: "batch"}}, do_constant_folding=True)
    graph = onnx.load_from_string(buffer.getvalue())
    fold_pads(graph)
    leftover = runtime_pads(graph)
    if leftover:
        raise ActionkitError(f"ONNX export left {len(leftover)} Pad node(s) with run-time pads ({leftover[0]})")
    graph.producer_name, graph.producer_version = "actionkit", actionkit.__version__
    graph.doc_string = f"I3D ({len(config.labels)} classes) exported by actionkit; see metadata 'input' and 'labels'"
    set_metadata(graph, metadata_for(config, options))
    onnx.checker.check_model(graph, full_check=True)
    return graph


def save_onnx(graph: onnx.ModelProto, path: Path) -> Path:
    """Write ``graph`` atomically (one file: the I3D's 50 MB of weights fit in a protobuf)."""
    return write_atomically(Path(path), lambda tmp: onnx.save(graph, str(tmp)))


def graph_report(graph: onnx.ModelProto) -> dict[str, object]:
    """Op counts, run-time Pad nodes and ops outside TensorRT's parser, for the export summary."""
    counts: dict[str, int] = {}
    for node in graph.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return {"ops": dict(sorted(counts.items())), "runtime_pads": runtime_pads(graph),
            "outside_tensorrt": unsupported_ops(graph)}
