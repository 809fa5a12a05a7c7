"""Where the benchmark scripts write: ``benchmarks/results/<measure>_<machine>_<YYYY-MM-DD>.json``."""

from __future__ import annotations

import datetime
import os
import platform
import re
from pathlib import Path

RESULTS = Path(__file__).with_name("results")


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_tag(device: str = "cpu") -> str:
    """A short name for the machine: the GPU's for a CUDA run, else the CPU's with its core count,
    e.g. ``amd-epyc-2c``."""
    if device.startswith("cuda"):
        import torch

        name = torch.cuda.get_device_name(torch.device(device))
    else:
        name = f"{cpu_name()} {os.cpu_count()}c"
    words = re.sub(r"\((r|tm)\)|cpu|processor|nvidia|@.*?ghz", " ", name.lower())
    return re.sub(r"[^a-z0-9]+", "-", words).strip("-")


def result_path(measure: str, device: str = "cpu") -> Path:
    """``benchmarks/results/<measure>_<machine>_<today>.json``."""
    return RESULTS / f"{measure}_{machine_tag(device)}_{datetime.date.today().isoformat()}.json"
