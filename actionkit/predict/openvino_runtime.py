"""OpenVINO models (``model.xml`` / ``model.int8.xml``) as a prediction backend on the CPU.

The optional ``openvino`` package is imported only here, when such a model is opened. Each IR carries
actionkit's config (labels and preprocessing) and its precision in its runtime info, written by
``actionkit export --openvino`` / ``--int8``; ``config.json`` beside it says the same. Opening a model
checks it against that config as every backend is checked (:func:`actionkit.predict.backends.check_model_file`):
a 5-D video input with the config's crop size, and one output per label.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from actionkit.errors import ActionkitError, CheckpointError
from actionkit.hub.model_config import ModelConfig
from actionkit.predict.backends import Shape, check_model_file
from actionkit.predict.clip_lengths import clip_len_error

INSTALL_HINT = "OpenVINO is not installed: pip install 'actionkit[openvino]'"
RT_INFO_CONFIG = ("actionkit", "config")  # runtime-info path of config.json's content
RT_INFO_PRECISION = ("actionkit", "precision")  # "fp32" or "int8"
RT_INFO_CLIP_LEN_MULTIPLE = ("actionkit", "clip_len_multiple")  # "0" unless the time axis is dynamic


class OpenVinoUnavailable(ActionkitError):
    """openvino (or nncf, for quantization) cannot be imported."""


def import_openvino() -> ModuleType:
    """The openvino module, or an :class:`OpenVinoUnavailable` naming the extra to install."""
    try:
        import openvino  # noqa: PLC0415  (optional: imported only when used)
    except ImportError:
        raise OpenVinoUnavailable(INSTALL_HINT) from None
    return openvino


def _rt_info(model, path: tuple[str, str]) -> str | None:
    return model.get_rt_info(list(path)).astype(str) if model.has_rt_info(list(path)) else None


def read_openvino_config(path: Path) -> ModelConfig:
    """The :class:`~actionkit.hub.ModelConfig` stored in an OpenVINO IR's runtime info. Raises
    :class:`~actionkit.errors.CheckpointError` naming the file when it is unreadable, has none, or the
    one it has is invalid."""
    ov = import_openvino()
    try:
        model = ov.Core().read_model(str(path))
    except RuntimeError as e:
        raise CheckpointError(path, f"OpenVINO cannot read it ({(str(e).splitlines() or ['?'])[0]})") from None
    text = _rt_info(model, RT_INFO_CONFIG)
    if text is None:
        raise CheckpointError(path, "no actionkit config in its runtime info; not an actionkit export "
                                    "(export it with actionkit, or put its config.json beside it)")
    try:
        return ModelConfig.from_dict(json.loads(text))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(path, f"invalid actionkit config in its runtime info: {e}") from None


def _dims(shape) -> Shape:
    """An OpenVINO partial shape of static rank as a tuple, None for a dynamic axis."""
    return tuple(dim.get_length() if dim.is_static else None for dim in shape)


class OpenVinoBackend:
    """An OpenVINO IR on the CPU, compiled with fp32 as the precision of every layer it does not hold in
    INT8 (``precision`` is ``"int8"`` for a quantized model, else ``"fp32"``). ``config`` is checked
    against the model's input and output shapes: a mismatch is a :class:`~actionkit.errors.CheckpointError`."""

    name = "openvino"

    def __init__(self, path: Path, config: ModelConfig, threads: int | None = None) -> None:
        ov = import_openvino()
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(self.path, "no such OpenVINO model")
        core = ov.Core()
        try:
            model = core.read_model(str(self.path))
        except RuntimeError as e:
            raise CheckpointError(self.path, f"OpenVINO cannot read it ({(str(e).splitlines() or ['?'])[0]})") from None
        self._check(model, config)
        self.precision = _rt_info(model, RT_INFO_PRECISION) or ("int8" if ".int8." in self.path.name else "fp32")
        multiple = _rt_info(model, RT_INFO_CLIP_LEN_MULTIPLE) or "0"
        self.clip_len_multiple = int(multiple) if multiple.isdigit() else 0
        frames = model.inputs[0].get_partial_shape()[2]
        self.fixed_clip_len = frames.get_length() if frames.is_static else None
        properties = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            properties["INFERENCE_NUM_THREADS"] = threads
        self.compiled = core.compile_model(model, "CPU", properties)
        self.device = torch.device("cpu")

    def _check(self, model, config: ModelConfig) -> None:
        """One input and one output, checked against ``config`` as every backend is
        (:func:`~actionkit.predict.backends.check_model_file`); sets :attr:`input_shape` and :attr:`num_classes`."""
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise CheckpointError(self.path, f"expected one input and one output, found {len(model.inputs)} "
                                             f"and {len(model.outputs)}")
        shape = model.inputs[0].get_partial_shape()
        crop = config.preprocessing.crop_size
        if shape.rank.is_dynamic:
            raise CheckpointError(self.path, f"its input is {shape}, not N×3×T×{crop}×{crop} as its config says")
        self.input_shape: Shape = _dims(shape)
        output = model.outputs[0].get_partial_shape()
        self.num_classes: int | None = _dims(output)[-1] if output.rank.is_static and len(output) else None
        check_model_file(self.path, config, self.input_shape, self.num_classes)

    def clip_len_error(self, frames: int) -> str | None:
        return clip_len_error(frames, self.fixed_clip_len, self.clip_len_multiple)

    def __call__(self, video: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(video.detach().to("cpu", torch.float32).numpy())
        result = self.compiled({0: array})  # the compiled model's own request: no second object to outlive it
        return torch.from_numpy(np.array(result[self.compiled.outputs[0]], copy=True))
