"""Architecture engine: SimPy schedule of the dataflow, ledger, schedule cache, trace.

Entry point::

    arch = build_architecture(config)            # config.hardware must be set
    result = run_experiment(config, observer=arch.observer, mvm=arch.mvm)
    arch.summary()                                # latency, energy, utilisation sections
    arch.write_trace("trace.json")               # Perfetto / chrome://tracing
"""

from archsim.engine.architecture import Architecture, HardwareObserver, build_architecture
from archsim.engine.ledger import Ledger
from archsim.engine.schedule import Engine

__all__ = ["Architecture", "Engine", "HardwareObserver", "Ledger", "build_architecture"]
