"""Registries of named variants: a model is chosen in the hardware YAML by its name.

A registry is a dict of name -> class filled by a decorator where the class is defined, so
adding a variant is one class in one file; nothing else branches on the name::

    ADC_MODELS = Registry("ADC model", "hardware.adc.model")

    @ADC_MODELS.register("sar")
    class SarAdc(Adc): ...

    ADC_MODELS.get("sar")   # the class; an unknown name raises ConfigError listing the known ones
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from archsim.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named variants of one kind of model (ADC model, weight encoding, topology)."""

    def __init__(self, kind: str, setting: str) -> None:
        self.kind = kind
        self.setting = setting
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return add

    def remove(self, name: str) -> None:
        """Forget ``name`` (for tests that register a temporary variant)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries))
            raise ConfigError(
                f"{self.setting} = {name!r} is not a known {self.kind}; use one of: {known}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries
