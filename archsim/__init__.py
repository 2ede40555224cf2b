"""archsim: event-driven, transaction-level simulator of memristive in-memory-computing chips that learn on chip.

Python API (the command line does the same)::

    import archsim
    r = archsim.run("smoke", hw="paper-130nm")          # a RunSummary (archsim.results)
    print(r.to_frame(), r.to_frame("energy"), r.final_accuracy)
    frame = archsim.sweep("sweeps/example-grid.yaml")   # one row per point (pandas)

Submodules load on first use, so ``import archsim`` stays cheap.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# OpenBLAS's idle threads spin (busy-wait) for 2**N TSC cycles after every multi-threaded
# BLAS call before they sleep, N = 28 by default: ~0.13 s on a 2.1 GHz machine, longer than a
# whole training step, so on the chip the spinning thread holds a core while archsim's own
# two-thread work runs (the read noise's split draws, the compiled kernels), which then take
# up to twice as long. OpenBLAS's FAQ ("Using OpenBLAS with OpenMP", docs/faq.md of OpenMathLib/OpenBLAS) gives the
# remedy for two alternating thread pools: a smaller OPENBLAS_THREAD_TIMEOUT, read once when
# OpenBLAS loads, so it must be set before numpy is first imported (a user's own value wins;
# importing numpy before archsim leaves OpenBLAS's default). Thread timing only: results are
# unchanged. Measured in docs/performance.md ("OpenBLAS's idle threads", h22-chip).
BLAS_THREAD_TIMEOUT_LOG2 = 14
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", str(BLAS_THREAD_TIMEOUT_LOG2))

if TYPE_CHECKING:  # pragma: no cover
    from archsim.api import run, sweep
    from archsim.experiment import EpochEnd, RunCallback, TaskEnd
    from archsim.results import RunSummary

_LAZY = {
    "run": ("archsim.api", "run"),
    "sweep": ("archsim.sweep", ""),  # the package itself, callable: archsim.api.sweep
    "RunSummary": ("archsim.results", "RunSummary"),
    "EpochEnd": ("archsim.experiment", "EpochEnd"),
    "TaskEnd": ("archsim.experiment", "TaskEnd"),
    "RunCallback": ("archsim.experiment", "RunCallback"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        loaded = importlib.import_module(module)
        return getattr(loaded, attribute) if attribute else loaded
    raise AttributeError(f"module 'archsim' has no attribute {name!r}")
