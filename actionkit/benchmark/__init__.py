"""``actionkit.benchmark``: measuring inference speed on the machine at hand (``actionkit benchmark``).

- :func:`model_speed`: model-only throughput per backend × precision × clip length × batch size;
- :func:`end_to_end_speed`: ``Recognizer.predict`` on real videos against the model alone;
- :mod:`~actionkit.benchmark.matmul_rate`: this CPU's matrix-multiply rate, the yardstick for CPU rows;
- :func:`time_calls`, :func:`synchronize`: the timing primitives.
"""

from actionkit.benchmark.end_to_end import EndToEndSpeed, end_to_end_speed
from actionkit.benchmark.matmul_rate import (
    matmul_call,
    matmul_flops,
    matmul_gflops,
    reference_calls,
)
from actionkit.benchmark.model_speed import (
    BENCHMARK_BACKENDS,
    ModelSpeed,
    default_precisions,
    flops_per_clip,
    format_model_speed,
    format_roofline,
    model_speed,
    peak_tflops,
    roofline_inputs,
)
from actionkit.benchmark.timing import synchronize, time_calls

__all__ = ["BENCHMARK_BACKENDS", "EndToEndSpeed", "ModelSpeed", "default_precisions", "end_to_end_speed",
           "flops_per_clip", "format_model_speed", "format_roofline", "matmul_call", "matmul_flops",
           "matmul_gflops", "model_speed", "peak_tflops", "reference_calls", "roofline_inputs", "synchronize",
           "time_calls"]
