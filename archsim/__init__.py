"""archsim: cycle-level simulator of memristive in-memory-computing chips that learn on chip."""

__version__ = "0.1.0"
