"""``actionkit.export``: turning trained models into deployable artifacts.

- :func:`export_model`: a Hub folder, run folder or checkpoint -> a folder with the stripped I3D (Hub
  format), ``model.onnx`` (metadata: preprocessing, labels, config), a Triton entry, optionally
  ``model.fp16.onnx`` and a TensorRT ``model.engine``, and ``export_check.json`` (each artifact against
  PyTorch on the same clips).
- :class:`CalibrationConfig`: where ``export_model(..., int8=True, calibration=...)`` takes its
  calibration clips (OpenVINO INT8 through NNCF).
- :func:`strip` / :func:`load_for_export`: the plain I3D of a Rev2Net, a training task or a run.
- :data:`FORMATS`: the table of formats and the options each accepts.

Installed from the repository's top-level ``export/`` folder.
"""

from actionkit.predict.onnx_metadata import read_onnx_config

from .calibration import CalibrationConfig
from .check import ExportCheck, check_export
from .exporter import ExportResult, export_model
from .formats import (
           FORMATS,
           ExportFormat,
           ExportOptionError,
           check_options,
           format_table,
)
from .onnx_export import OnnxOptions, save_onnx, to_onnx
from .strip import load_for_export, strip
from .tensorrt import EnginePlan, TensorRTOptions, TensorRTUnavailable, plan_engine

__all__ = ["CalibrationConfig", "ExportCheck", "check_export", "ExportResult", "export_model", "FORMATS", "ExportFormat",
           "ExportOptionError", "check_options", "format_table", "OnnxOptions", "read_onnx_config", "save_onnx", "to_onnx",
           "load_for_export", "strip", "EnginePlan", "TensorRTOptions", "TensorRTUnavailable", "plan_engine"]
