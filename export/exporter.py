"""``export_model``: from a model, run folder or checkpoint to a deployable folder, then checked.

The folder holds the stripped model as a Hub folder (``config.json``, ``model.safetensors``,
``README.md``; the torch backend and ``from_pretrained`` read it), ``model.onnx`` (and
``model.fp16.onnx``), a Triton repository entry, ``model.engine`` with ``engine.json`` and
``timing.cache`` when TensorRT is asked for, the OpenVINO IR ``model.xml`` (and ``model.int8.xml``,
quantized on calibration clips) when OpenVINO is asked for, and ``export_check.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from actionkit.artifacts import (
    CARD_FILE,
    CONFIG_FILE,
    ONNX_FILE,
    ONNX_FP16_FILE,
    OPENVINO_FILE,
    OPENVINO_INT8_FILE,
    WEIGHTS_FILE,
)
from actionkit.errors import ActionkitError
from actionkit.hub import model_config_of, save_pretrained
from actionkit.predict import Recognizer

from .calibration import CalibrationConfig, calibration_clips, calibration_source
from .check import ExportCheck, check_export
from .formats import check_options
from .int8_accuracy import Int8Accuracy, int8_accuracy
from .onnx_export import TIME_STRIDE, OnnxOptions, graph_report, save_onnx, to_onnx
from .onnx_fp16 import to_fp16
from .openvino_export import import_nncf, onnx_to_openvino, quantize_int8, save_openvino
from .strip import load_for_export
from .tensorrt import TensorRTOptions, build_engine, import_tensorrt, plan_engine
from .triton import write_triton_repository


@dataclass
class ExportResult:
    out_dir: Path
    source: str
    files: list[Path] = field(default_factory=list)
    graph: dict | None = None
    check: ExportCheck | None = None
    int8_accuracy: Int8Accuracy | None = None  # fp32 against INT8 on the calibration dataset's val split


def export_model(source: str | Path, out_dir: str | Path, *, onnx: bool = True, tensorrt: bool = False,
                 fp16: bool | None = None, opset: int | None = None, dynamic_clip_len: bool | None = None,
                 min_batch: int | None = None, opt_batch: int | None = None, max_batch: int | None = None,
                 workspace_gib: float | None = None, openvino: bool = False, int8: bool = False,
                 calibration: CalibrationConfig | str | Path | None = None,
                 check_videos: Sequence[str | Path] | None = None,
                 check: bool = True, device: str = "cpu", log: Callable[[str], None] = print) -> ExportResult:
    """Export ``source`` into ``out_dir``. ``fp16``: None means TensorRT in fp16 and ONNX in fp32 only;
    True adds ``model.fp16.onnx`` too; False keeps TensorRT in fp32. ``openvino`` writes ``model.xml``;
    ``int8`` also ``model.int8.xml``, quantized on clips of ``calibration`` (a :class:`CalibrationConfig`,
    or the path of a dataset or a folder of videos), and, when that is a dataset with a val split,
    reports the val top-1 of fp32 and INT8 (:attr:`ExportResult.int8_accuracy`). TensorRT and OpenVINO
    read the ONNX, so it is always written with them. Options a chosen format does not take are an
    error (see :mod:`.formats`); so are ``int8`` without ``calibration`` and the reverse. Calibration
    videos are read before anything is written, so a bad source leaves no artifact behind."""
    if int8 and calibration is None:
        raise ActionkitError("--int8 needs calibration clips: --calibrate DATA (a dataset in any --data layout, "
                             "or a folder of videos, run through the model's preprocessing)")
    if calibration is not None and not int8:
        raise ActionkitError("--calibrate applies to --int8 (INT8 quantization); add --int8 or drop it")
    openvino = openvino or int8
    formats = ["torch", *(["onnx"] if onnx or tensorrt or openvino else []), *(["tensorrt"] if tensorrt else []),
               *(["openvino"] if openvino else [])]
    check_options(formats, {"fp16": fp16, "opset": opset, "dynamic_clip_len": dynamic_clip_len,
                            "min_batch": min_batch, "opt_batch": opt_batch, "max_batch": max_batch,
                            "workspace_gib": workspace_gib, "int8": int8 or None,
                            "calibration": calibration})
    if int8:
        import_nncf()  # fail before any work when the extra is missing
    trt_options = TensorRTOptions(fp16=fp16 is not False, min_batch=min_batch or 1, opt_batch=opt_batch or 4,
                                  max_batch=max_batch or 8, workspace_gib=workspace_gib or 4.0) if tensorrt else None
    if tensorrt:
        import_tensorrt()  # fail before minutes of work when the extra is missing
    out = Path(out_dir)
    model, described = load_for_export(source)
    config = model_config_of(model)
    log(f"exporting {described}: I3D, {len(config.labels)} classes")
    if int8:
        settings = calibration if isinstance(calibration, CalibrationConfig) else CalibrationConfig(Path(calibration))
        found = calibration_source(settings)
        log(f"calibrating INT8 on {settings.clips} clips from {found.described}")
        clips = calibration_clips(Recognizer(model, config, device="cpu", precision="fp32"), found.videos,
                                  settings.clips, settings.seed, warn=lambda line: log(f"warning: {line}"))
    result = ExportResult(out, described)
    save_pretrained(model, out, config=config)
    result.files += [out / CONFIG_FILE, out / WEIGHTS_FILE, out / CARD_FILE]
    if "onnx" in formats:
        options = OnnxOptions(opset=opset or 17, dynamic_clip_len=bool(dynamic_clip_len))
        graph = to_onnx(model, config, options)
        result.graph = graph_report(graph)
        onnx_path = save_onnx(graph, out / ONNX_FILE)
        result.files.append(onnx_path)
        log(f"wrote {onnx_path} (opset {options.opset}; ops: "
            + ", ".join(f"{k} {v}" for k, v in result.graph["ops"].items()) + ")")
        if fp16:
            result.files.append(save_onnx(to_fp16(graph), out / ONNX_FP16_FILE))
        result.files.append(write_triton_repository(onnx_path, config, out, max_batch=max_batch or 8,
                                                    dynamic_clip_len=options.dynamic_clip_len))
        if trt_options is not None:
            plan = plan_engine(onnx_path, trt_options, out)
            result.files.append(build_engine(plan, log=log))
        if openvino:
            multiple = TIME_STRIDE if options.dynamic_clip_len else 0
            fp32_path = save_openvino(onnx_to_openvino(onnx_path), out / OPENVINO_FILE, config, "fp32", multiple)
            result.files += [fp32_path, fp32_path.with_suffix(".bin")]
            log(f"wrote {fp32_path} (OpenVINO fp32)")
            if int8:
                quantized = quantize_int8(onnx_to_openvino(onnx_path), clips, config.preprocessing.value_range)
                int8_path = save_openvino(quantized, out / OPENVINO_INT8_FILE, config, "int8", multiple)
                result.files += [int8_path, int8_path.with_suffix(".bin")]
                log(f"wrote {int8_path} (OpenVINO INT8, {len(clips)} calibration clips)")
                if found.validation:
                    result.int8_accuracy = int8_accuracy(fp32_path, int8_path, config, found.validation)
                    if result.int8_accuracy is not None:
                        log(result.int8_accuracy.line())
    if check:
        result.check = check_export(out, model, config, check_videos, device=device,
                                    int8=result.int8_accuracy.to_dict() if result.int8_accuracy else None)
        log(result.check.table())
    return result
