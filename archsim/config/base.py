"""Shared base of every configuration model: strict (unknown keys rejected), immutable."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Pydantic model that rejects unknown keys and NaN/inf floats and cannot be mutated."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
