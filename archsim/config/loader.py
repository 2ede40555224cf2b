"""Load, override, validate and save configuration trees.

Sources are merged as plain dictionaries first (workload YAML, hardware YAML under
``hardware``, ``--set`` overrides, ``--seed``) and validated once at the end, so an error
always names the dotted key the user wrote.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from archsim.config.dotted import set_dotted
from archsim.errors import ConfigError, ResourceError
from archsim.limits import MAX_CONFIG_BYTES, MAX_EXPANDED_NODES, MAX_NESTING_DEPTH, MAX_YAML_ALIASES

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets"

M = TypeVar("M", bound=BaseModel)


def resolve_preset_path(path_or_name: str | Path, kind: str) -> Path:
    """Return an existing YAML path: a file path, or a shipped preset name of ``kind``.

    ``kind`` is ``"workloads"`` or ``"hwconfigs"``; ``paper-mnist-fmnist`` finds
    ``workloads/paper-mnist-fmnist.yaml`` shipped with the package.
    """
    path = Path(path_or_name)
    if path.is_file():
        return path
    candidates = [PRESET_DIR / kind / path, PRESET_DIR / kind / f"{path}.yaml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    shipped = sorted(p.stem for p in (PRESET_DIR / kind).glob("*.yaml"))
    raise ConfigError(
        f"{path}: no such file; give a path to a YAML file or one of the shipped {kind}: "
        + ", ".join(shipped)
    )


class InputTooLarge(Exception):
    """A YAML document beyond the nesting, alias or size bounds (see archsim.limits)."""


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts nesting depth and alias uses while composing, so a 20 000-deep
    document or a billion-laughs alias chain stops early instead of exhausting the stack or
    the memory (the expanded size is checked by :func:`expanded_size` after loading)."""

    def __init__(self, stream: Any):
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise InputTooLarge(f"more than {MAX_YAML_ALIASES} alias uses (*name)")
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_NESTING_DEPTH:
            raise InputTooLarge(f"nested deeper than {MAX_NESTING_DEPTH} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def expanded_size(data: Any) -> int:
    """Values in ``data`` counting every alias use as a full copy; stops past the bound.

    Shared sub-trees (what aliases make) are counted once per use without being copied,
    so the count itself stays cheap; a tree that contains itself is refused.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise InputTooLarge("an alias refers to a collection that contains it")
        active.add(key)
        children = list(node.keys()) + list(node.values()) if isinstance(node, dict) else node
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_EXPANDED_NODES:
                raise InputTooLarge(f"more than {MAX_EXPANDED_NODES:,} values once aliases are expanded")
        active.discard(key)
        sizes[key] = total
        return total

    return size(data)


def load_yaml_text(text: str) -> Any:
    """Parse YAML with the bounds of :class:`BoundedLoader` and :func:`expanded_size`."""
    loader = BoundedLoader(text)
    try:
        data = loader.get_single_data()
    finally:
        loader.dispose()
    expanded_size(data)
    return data


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; errors name the file and the line."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ResourceError(
                f"{path}: larger than {MAX_CONFIG_BYTES // 2**20} MiB; a configuration is a few kB, "
                "check that this is the right file"
            )
        text = raw.decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror}); check the path") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file; give a YAML file") from None
    try:
        data = load_yaml_text(text)
    except InputTooLarge as exc:
        raise ResourceError(f"{path}: {exc}; simplify the file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid syntax"
        raise ConfigError(f"{path}:{where} malformed YAML ({problem}); fix the syntax") from None
    if data is None:
        raise ConfigError(f"{path}: file is empty; it must hold a YAML mapping of settings")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: top level is a {type(data).__name__}, expected a mapping of settings"
        )
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``a.b.c=value`` into the dotted key and the YAML-parsed value."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: expected dotted.key=value, e.g. learning.m_star=2")
    try:
        value = load_yaml_text(raw) if raw.strip() else None
    except InputTooLarge as exc:
        raise ResourceError(f"--set {text!r}: {exc}; simplify the value") from None
    except yaml.YAMLError:
        raise ConfigError(f"--set {text!r}: value is not valid YAML; quote it or fix it") from None
    return key, value


def apply_overrides(tree: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``tree`` with every ``dotted.key=value`` override applied.

    A numeric part indexes a list and ``*`` means every element, as for sweep keys:
    ``tasks.0.epochs=10``, ``tasks.*.train_limit=1000``.
    """
    result = copy.deepcopy(tree)
    for text in overrides:
        key, value = parse_override(text)
        set_dotted(result, key, value, label=f"--set {text!r}")
    return result


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line naming the first offending dotted key and what is wrong with it."""
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    kind = first["type"]
    if kind == "extra_forbidden":
        return f"{source}: unknown key '{key}'; remove it or check its spelling"
    if kind == "missing":
        return f"{source}: missing required key '{key}'; add it"
    message = first["msg"].removeprefix("Value error, ")
    value = first.get("input")
    shown = "" if isinstance(value, (dict, list)) else f" (got {value!r})"
    more = len(exc.errors()) - 1
    tail = f" [{more} more problem(s)]" if more else ""
    return f"{source}: invalid value for '{key}': {message}{shown}{tail}"


def validate(model: type[M], data: Mapping[str, Any], source: str) -> M:
    """Validate ``data`` against ``model``, turning errors into one-line ConfigErrors."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def to_yaml(model: BaseModel) -> str:
    """The resolved configuration as YAML, round-trippable through :func:`validate`."""
    return yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False)
