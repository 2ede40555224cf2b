"""Shared fixtures: small configurations that train in seconds."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

from archsim.config import RunConfig, validate

# Property tests assert on values, never on time: a per-example deadline only fails them when
# the shared CI machine is busy (the first example also pays numba's kernel loading).
settings.register_profile("archsim", deadline=None)
settings.load_profile("archsim")

REPO = Path(__file__).resolve().parent.parent


def tiny_config(**overrides) -> RunConfig:
    """MNIST -> Fashion-MNIST on small subsets with a small network."""
    tree = {
        "name": "tiny",
        "tasks": [
            {"name": "mnist", "dataset": "mnist", "epochs": 2, "train_limit": 2000, "test_limit": 1000},
            {"name": "fashion", "dataset": "fashion-mnist", "epochs": 2, "train_limit": 2000, "test_limit": 1000},
        ],
        "model": {"hidden": [128], "levels": 3, "init_width": 2.0},
        "learning": {"rule": "qnn-meta", "m_star": 0.0, "batch_size": 100, "optimizer": {"lr": 0.02}},
        "data": {"validation_size": 500},
        "seed": 0,
    }
    for dotted, value in overrides.items():
        node = tree
        keys = dotted.split("__")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return validate(RunConfig, tree, "tiny")


@pytest.fixture
def tiny():
    return tiny_config


@pytest.fixture
def repo() -> Path:
    return REPO
