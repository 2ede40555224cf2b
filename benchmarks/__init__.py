"""Benchmarks (run as ``python -m benchmarks.<name>``).

archsim is imported before numpy, as the command line does, so that its runtime settings
(OpenBLAS's thread spin, archsim/__init__.py) apply here as in ``archsim run``.
"""

import archsim  # noqa: F401
