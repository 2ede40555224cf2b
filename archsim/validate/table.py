"""The text table ``archsim validate`` prints."""

from __future__ import annotations

from archsim.validate.design import Design
from archsim.validate.predict import Check

def render(results: list[tuple[Design, list[Check]]]) -> str:
    lines = []
    for design, checks in results:
        lines.append(f"{design.name}: {design.title}")
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
    failed = sum(not c.passed for _, checks in results for c in checks)
    total = sum(len(checks) for _, checks in results)
    lines.append(f"{total - failed}/{total} figures within tolerance or their documented band"
                 + ("" if not failed else f"; {failed} FAILED"))
    return "\n".join(lines)
