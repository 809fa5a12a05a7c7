"""``export_model``: from a model, run folder or checkpoint to a deployable folder, then checked.

The folder holds the stripped model as a Hub folder (``config.json``, ``model.safetensors``,
``README.md``; the torch backend and ``from_pretrained`` read it), ``model.onnx`` (and
``model.fp16.onnx``), a Triton repository entry, ``model.engine`` with ``engine.json`` and
``timing.cache`` when TensorRT is asked for, and ``export_check.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from actionkit.artifacts import CARD_FILE, CONFIG_FILE, ONNX_FILE, ONNX_FP16_FILE, WEIGHTS_FILE
from actionkit.hub import model_config_of, save_pretrained

from .check import ExportCheck, check_export
from .formats import check_options
from .onnx_export import OnnxOptions, graph_report, save_onnx, to_onnx
from .onnx_fp16 import to_fp16
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


def export_model(source: str | Path, out_dir: str | Path, *, onnx: bool = True, tensorrt: bool = False,
                 fp16: bool | None = None, opset: int | None = None, dynamic_clip_len: bool | None = None,
                 min_batch: int | None = None, opt_batch: int | None = None, max_batch: int | None = None,
                 workspace_gib: float | None = None, check_videos: Sequence[str | Path] | None = None,
                 check: bool = True, device: str = "cpu", log: Callable[[str], None] = print) -> ExportResult:
    """Export ``source`` into ``out_dir``. ``fp16``: None means TensorRT in fp16 and ONNX in fp32 only;
    True adds ``model.fp16.onnx`` too; False keeps TensorRT in fp32. TensorRT reads the ONNX, so it is
    always written. Options a chosen format does not take are an error (see :mod:`.formats`)."""
    formats = ["torch", *(["onnx"] if onnx or tensorrt else []), *(["tensorrt"] if tensorrt else [])]
    check_options(formats, {"fp16": fp16, "opset": opset, "dynamic_clip_len": dynamic_clip_len,
                            "min_batch": min_batch, "opt_batch": opt_batch, "max_batch": max_batch,
                            "workspace_gib": workspace_gib})
    trt_options = TensorRTOptions(fp16=fp16 is not False, min_batch=min_batch or 1, opt_batch=opt_batch or 4,
                                  max_batch=max_batch or 8, workspace_gib=workspace_gib or 4.0) if tensorrt else None
    if tensorrt:
        import_tensorrt()  # fail before minutes of work when the extra is missing
    out = Path(out_dir)
    model, described = load_for_export(source)
    config = model_config_of(model)
    log(f"exporting {described}: I3D, {len(config.labels)} classes")
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
    if check:
        result.check = check_export(out, model, config, check_videos, device=device)
        log(result.check.table())
    return result
