"""The OpenVINO tests (tests/openvino_cases.py), run in a fresh pytest process after a loader with worker
processes, in the same process.

That order is a regression test: PyTorch's SIGCHLD handler, which its loaders install and used to leave
behind, crashed OpenVINO's INT8 export later in the process (SIGSEGV). ``worker_processes()`` now puts
the previous handler back. A crash here fails this test with the cases' output instead of killing the
whole suite.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("openvino", reason="the openvino extra is not installed (pip install -e '.[dev]')")
pytest.importorskip("nncf", reason="the openvino extra is not installed (pip install -e '.[dev]')")


def test_the_openvino_cases_pass_in_their_own_process() -> None:
    tests = Path(__file__).resolve().parent
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                           f"{tests / 'test_loader.py'}::test_loader_batches_are_uint8_and_reproducible",
                           str(tests / "openvino_cases.py")], cwd=tests.parent, capture_output=True, text=True,
                          timeout=1800)
    print(done.stdout[-3000:])
    assert done.returncode == 0, f"exit code {done.returncode}\n" + done.stdout[-6000:] + done.stderr[-3000:]
    assert " passed" in done.stdout.splitlines()[-1] and "failed" not in done.stdout.splitlines()[-1]
