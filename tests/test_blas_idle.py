"""archsim's OpenBLAS thread spin (archsim/__init__.py): set in the environment unless the user
set it, and read back from the OpenBLAS numpy loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
READ_BACK = (
    "import archsim, numpy, os\n"
    "from threadpoolctl import ThreadpoolController\n"
    "libs = [c.dynlib for c in ThreadpoolController().lib_controllers if c.internal_api == 'openblas']\n"
    "readers = [lib.openblas_thread_timeout for lib in libs if hasattr(lib, 'openblas_thread_timeout')]\n"
    "print(os.environ['OPENBLAS_THREAD_TIMEOUT'], readers[0]() if readers else 'none')\n"
)


def _python(code: str, **extra_env: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"} | extra_env
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    return done.stdout.split()


def test_openblas_loaded_after_archsim_reads_its_thread_timeout():
    pytest.importorskip("threadpoolctl")
    wanted, loaded = _python(READ_BACK)
    if loaded == "none":
        pytest.skip("numpy's BLAS is not an OpenBLAS exporting openblas_thread_timeout")
    assert loaded == wanted != "0"
    # numpy first: OpenBLAS read its environment before archsim set the value (its default applies)
    assert _python(READ_BACK.replace("import archsim, numpy, os", "import numpy, archsim, os"))[1] == "0"


def test_importing_archsim_first_shortens_openblas_spin_and_keeps_a_users_value():
    """archsim sets OpenBLAS's thread spin (read when numpy loads) unless the user set it."""
    code = "import archsim, os, numpy; print(os.environ['OPENBLAS_THREAD_TIMEOUT'])"
    assert _python(code) == ["16"]
    assert _python(code, OPENBLAS_THREAD_TIMEOUT="7") == ["7"]
