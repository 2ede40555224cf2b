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

# OpenBLAS's worker threads spin on their core for 2**28 cycles (~0.1 s) after every matrix
# product before they sleep, so between products they hold the second core that archsim's
# compiled element-wise kernels and helper thread need (docs/performance.md, "OpenBLAS's
# spinning threads"). 2**16 cycles (~25 us) still bridges back-to-back products. OpenBLAS reads
# this when it loads, on numpy's first import: it applies where archsim is imported before
# numpy (the command line and the processes it starts); a value already set is kept.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "16")

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
