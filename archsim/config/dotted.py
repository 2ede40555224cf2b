"""Dotted keys into nested configuration trees: ``learning.m_star``, ``tasks.0.epochs``, ``tasks.*.epochs``.

Shared by ``--set`` overrides (``archsim.config.loader``) and sweep keys (``archsim.sweep``):
a numeric part indexes a list, ``*`` means every element.
"""

from __future__ import annotations

import copy
from typing import Any

from archsim.errors import ConfigError


def set_dotted(tree: dict[str, Any], key: str, value: Any, label: str | None = None) -> None:
    """Set ``a.b.0.c`` (``*`` = every list element) in a nested dict/list tree, in place.

    Missing sections are created as dicts. Errors start with ``label`` (default
    ``key 'a.b.0.c'``), so a ``--set`` override or a sweep key is named as the user wrote it.
    """
    parts = key.split(".")
    label = label or f"key '{key}'"

    def walk(node: Any, depth: int) -> None:
        part = parts[depth]
        last = depth == len(parts) - 1
        where = ".".join(parts[:depth]) or "(top level)"
        if isinstance(node, list):
            if part == "*":
                indices = range(len(node))
            elif part.lstrip("-").isdigit():
                index = int(part)
                if not -len(node) <= index < len(node):
                    raise ConfigError(
                        f"{label}: {where} has {len(node)} element(s), no index {index}"
                    )
                indices = range(index % len(node), index % len(node) + 1)
            else:
                raise ConfigError(f"{label}: {where} is a list; use an index or '*', not '{part}'")
            for i in indices:
                if last:
                    node[i] = copy.deepcopy(value)
                else:
                    walk(node[i], depth + 1)
            return
        if not isinstance(node, dict):
            raise ConfigError(f"{label}: {where} is a value, not a section")
        if part == "*":
            raise ConfigError(f"{label}: '*' only applies to lists, {where} is a section")
        if last:
            node[part] = copy.deepcopy(value)
            return
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        walk(child, depth + 1)

    walk(tree, 0)


def get_dotted(tree: Any, key: str) -> Any:
    """Value at a dotted key of a resolved tree; ``*`` gives the list of every element's value."""
    node = tree
    parts = key.split(".")
    for depth, part in enumerate(parts):
        if isinstance(node, list):
            if part == "*":
                rest = ".".join(parts[depth + 1 :])
                return [get_dotted(item, rest) if rest else item for item in node]
            node = node[int(part)]
        else:
            node = node[part]
    return node
