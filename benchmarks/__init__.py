"""archsim's benchmarks (``python -m benchmarks.<name>``).

archsim is imported here, before any benchmark imports numpy, so that OpenBLAS loads with the
thread settings archsim makes on import (``archsim/__init__.py``), as under ``archsim run``.
"""

import archsim  # noqa: F401
