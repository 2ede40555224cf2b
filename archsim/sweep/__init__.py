"""Design-space sweeps: ``archsim sweep SWEEP.yaml`` (see docs/sweeps.md).

Importing this package does not import Dask; :mod:`archsim.sweep.execute` does so only when
a sweep runs on a cluster.
"""

from __future__ import annotations

import sys
import types

from archsim.sweep.points import Point, expand, point_id
from archsim.sweep.spec import SweepSpec, load_spec

__all__ = ["Point", "SweepSpec", "expand", "load_spec", "point_id", "run_sweep"]


def run_sweep(*args, **kwargs):
    """See :func:`archsim.sweep.execute.run_sweep`."""
    from archsim.sweep.execute import run_sweep as _run_sweep

    return _run_sweep(*args, **kwargs)


class _CallableModule(types.ModuleType):
    """``archsim.sweep`` is both this package and the API function :func:`archsim.api.sweep`:
    importing the package makes it the attribute ``sweep`` of ``archsim``, so calling the
    package runs a sweep (``archsim.sweep("spec.yaml")`` returns the results DataFrame)."""

    def __call__(self, *args, **kwargs):
        from archsim.api import sweep

        return sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
