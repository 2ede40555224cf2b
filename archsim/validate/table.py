"""The text table ``archsim validate`` prints."""

from __future__ import annotations

from archsim.validate.design import Design
from archsim.validate.predict import Check, Prediction


def shares(energy: dict[str, float]) -> str:
    """One MVM's energy by component as percentages, largest first."""
    total = sum(energy.values())
    parts = sorted(energy.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{name} {100 * e / total:.1f} %" for name, e in parts) if total > 0 else "none"


def render(results: list[tuple[Design, Prediction, list[Check]]]) -> str:
    lines = []
    for design, prediction, checks in results:
        lines.append(f"{design.name}: {design.title}")
        lines.append(f"  one MVM's energy: {shares(prediction.energy_by_component_j)}")
        lines.append(f"  {'figure':<20} {'published':>12} {'simulated':>12} {'ratio':>7}  status      unit")
        for c in checks:
            f = c.figure
            lines.append(
                f"  {f.metric:<20} {f.published:>12.4g} {c.simulated_shown:>12.4g} "
                f"{c.ratio:>7.3f}  {c.status:<10}  {f.unit}  ({f.source})"
            )
            if f.deviation and not c.within_tolerance:
                lines.append(f"  {'':<20} why: {f.deviation}")
        lines.append("")
    failed = sum(not c.passed for _, _, checks in results for c in checks)
    total = sum(len(checks) for _, _, checks in results)
    lines.append(f"{total - failed}/{total} figures within tolerance or their documented band"
                 + ("" if not failed else f"; {failed} FAILED"))
    return "\n".join(lines)
