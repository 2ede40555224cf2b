"""Shared base of every configuration model: strict (unknown keys rejected), immutable.

Beyond pydantic's own checks, every field refuses, before conversion:

* a boolean where a number is expected (YAML reads ``yes``/``no``/``on``/``off`` as booleans,
  and pydantic would turn ``lr: yes`` into 1.0);
* a string holding a NUL byte (it cannot be a path or a name in any file);

and, after conversion, a float beyond float32's range (+-3.4e38): arrays are float32,
where it would become inf.
"""

from __future__ import annotations

import math
import types
import typing
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from archsim.limits import FLOAT32_MAX, FLOAT32_TINY


def accepts_bool(annotation: Any) -> bool:
    """True if ``annotation`` admits a boolean at this position (bool, Any, a union with one)."""
    if annotation is bool or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(accepts_bool(arg) for arg in typing.get_args(annotation))
    if origin is typing.Literal:
        return any(isinstance(arg, bool) for arg in typing.get_args(annotation))
    if origin is typing.Annotated:
        return accepts_bool(typing.get_args(annotation)[0])
    return False


def element_annotations(annotation: Any, container: type) -> list[Any]:
    """Annotations of the elements of a list/tuple (``container`` list) or of a dict's values."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return [e for arg in args for e in element_annotations(arg, container)]
    if origin is typing.Annotated:
        return element_annotations(args[0], container)
    if annotation is Any:
        return [Any]
    if container is list and origin in (list, tuple, set, frozenset):
        return [a for a in args if a is not Ellipsis] or [Any]
    if container is dict and origin is dict and len(args) == 2:
        return [args[1]]
    return []


def type_problem(value: Any, annotation: Any) -> str | None:
    """Why ``value`` may not stand where ``annotation`` is declared, or None."""
    if isinstance(value, bool):
        if accepts_bool(annotation):
            return None
        word = "true/yes/on" if value else "false/no/off"
        return f"expected a number, got the boolean {value} (YAML reads {word} as a boolean)"
    if isinstance(value, str) and "\x00" in value:
        return "text holds a NUL byte"
    if isinstance(value, (list, tuple, dict)):
        kind = dict if isinstance(value, dict) else list
        elements = element_annotations(annotation, kind)
        if not elements:
            return None
        items = value.values() if isinstance(value, dict) else value
        for item in items:
            for element in elements:
                problem = type_problem(item, element)
                if problem is None:
                    break
            else:
                return problem
    return None


def beyond_float32(value: Any) -> float | None:
    """The first finite float in ``value`` (a number or nested lists) beyond float32's range."""
    if isinstance(value, float):
        return value if math.isfinite(value) and abs(value) > FLOAT32_MAX else None
    if isinstance(value, (list, tuple)):
        for item in value:
            found = beyond_float32(item)
            if found is not None:
                return found
    return None


def check_float32(values: list[float], what: str, increasing: bool = False) -> None:
    """Values stored as float32 must stay finite, not flush to zero and (if ``increasing``)
    strictly increasing once rounded to float32."""
    for v in values:
        if v != 0 and abs(v) < FLOAT32_TINY:
            raise ValueError(f"{what} value {v:g} is below float32's smallest normal number "
                             f"({FLOAT32_TINY:.3g}) and would be rounded to zero")
    stored = np.asarray(values, dtype=np.float64).astype(np.float32)
    if not np.all(np.isfinite(stored)):
        raise ValueError(f"{what} must be within float32's range (+-{FLOAT32_MAX:.3g})")
    if increasing and np.any(np.diff(stored) <= 0):
        raise ValueError(f"{what} must stay strictly increasing in float32 (values too close together)")


class StrictModel(BaseModel):
    """Pydantic model that rejects unknown keys and NaN/inf floats and cannot be mutated."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_huge_float_or_nul(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is not None:
            problem = type_problem(value, field.annotation)
            if problem is not None:
                raise ValueError(problem)
        return value

    @field_validator("*", mode="after")
    @classmethod
    def _within_float32(cls, value: Any) -> Any:
        huge = beyond_float32(value)
        if huge is not None:
            raise ValueError(f"{huge:g} is beyond float32's range (+-{FLOAT32_MAX:.3g}), where it would become inf")
        return value
