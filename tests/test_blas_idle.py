"""archsim's OpenBLAS idle-thread setting (archsim/__init__.py): set before numpy loads OpenBLAS,
a user's own value kept, and read by the OpenBLAS that numpy loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import archsim

REPO = Path(__file__).resolve().parent.parent


def _python(code: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    base["PYTHONPATH"] = os.pathsep.join([str(REPO), base.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True,
                          timeout=120, check=True)
    return done.stdout.strip()


def test_importing_archsim_sets_the_blas_thread_timeout_unless_the_user_did():
    show = "import archsim, os; print(os.environ['OPENBLAS_THREAD_TIMEOUT'])"
    assert _python(show) == str(archsim.BLAS_THREAD_TIMEOUT_LOG2)
    assert _python(show, OPENBLAS_THREAD_TIMEOUT="22") == "22"


def test_openblas_loaded_after_archsim_reads_the_setting():
    pytest.importorskip("threadpoolctl")
    read = (
        "import archsim, numpy\n"
        "from threadpoolctl import ThreadpoolController\n"
        "libs = [c.dynlib for c in ThreadpoolController().lib_controllers if c.internal_api == 'openblas']\n"
        "readers = [lib.openblas_thread_timeout for lib in libs if hasattr(lib, 'openblas_thread_timeout')]\n"
        "print(readers[0]() if readers else 'none')\n"
    )
    value = _python(read)
    if value == "none":
        pytest.skip("numpy's BLAS is not an OpenBLAS exporting openblas_thread_timeout")
    assert value == str(archsim.BLAS_THREAD_TIMEOUT_LOG2)
    # numpy first: OpenBLAS has already read its environment (its default applies)
    assert _python(read.replace("import archsim, numpy", "import numpy, archsim")) == "0"
