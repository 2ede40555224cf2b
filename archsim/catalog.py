"""The shipped presets (``archsim presets``): workloads, hardware and devices, one line each.

A preset's line is its YAML ``description`` (else its first comment line), folded to one line.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from archsim.config.loader import PRESET_DIR

KINDS = (
    ("workloads", PRESET_DIR / "workloads", "archsim run NAME"),
    ("hardware", PRESET_DIR / "hwconfigs", "--hw NAME"),
    ("devices", PRESET_DIR / "hwconfigs" / "devices", "device: {preset: NAME}"),
)


def describe_preset(path: Path) -> str:
    """The preset's description on one line."""
    text = path.read_text(encoding="utf-8")
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError:
        tree = None
    if isinstance(tree, dict) and str(tree.get("description") or "").strip():
        return " ".join(str(tree["description"]).split())
    for line in text.splitlines():
        if line.startswith("#") and line.strip("# "):
            return line.strip("# ").strip()
    return "(no description)"


def presets() -> dict[str, dict[str, str]]:
    """``{kind: {name: description}}`` of every shipped preset."""
    return {kind: {p.stem: describe_preset(p) for p in sorted(folder.glob("*.yaml"))}
            for kind, folder, _ in KINDS}


def preset_lines() -> list[str]:
    """The listing printed by ``archsim presets``."""
    lines: list[str] = []
    found = presets()
    for kind, _, usage in KINDS:
        names = found[kind]
        width = max((len(n) for n in names), default=0)
        lines.append(f"{kind} ({usage}):")
        lines += [f"  {name:<{width}}  {text}" for name, text in names.items()]
    return lines
