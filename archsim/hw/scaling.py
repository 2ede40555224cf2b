"""Technology scaling of CMOS energies (the rule is stated in docs/architecture.md §6).

``stillmaker``: Stillmaker & Baas, "Scaling equations for the accurate prediction of CMOS
device performance from 180 nm to 7 nm", Integration 58 (2017) 74-81. Their fitted energy
per switching event at node n and supply V is a quadratic a_n V^2 + b_n V + c_n; the factor
from (node x, supply V_x) to (node y, supply V_y) is E_y(V_y)/E_x(V_x) (Accelergy's
hwcomponents applies the same polynomials), with linear interpolation between tabulated nodes
and a (n/n_edge)^0.5 extrapolation outside 130..7 nm.

``dennard``: E ~ C V^2 with C ~ feature size: factor (y/x) * (V/V_ref)^2.
"""

from __future__ import annotations

import math

# (node in nm, a, b, c) of the energy polynomial a V^2 + b V + c (Stillmaker & Baas 2017,
# Table of fitted energy coefficients, as tabulated in Accelergy hwcomponents/scaling).
_STILLMAKER = (
    (130.0, 7.171, -6.709, 2.904),
    (90.0, 4.762, -4.781, 2.092),
    (65.0, 3.755, -4.398, 1.975),
    (45.0, 1.103, -0.362, 0.2767),
    (32.0, 0.9559, -0.7823, 0.471),
    (20.0, 0.373, -0.1582, 0.04104),
    (16.0, 0.2958, -0.1241, 0.03024),
    (14.0, 0.2363, -0.09675, 0.02239),
    (10.0, 0.2068, -0.09311, 0.02375),
    (7.0, 0.1776, -0.09097, 0.02447),
)


def _stillmaker_energy(node_nm: float, vdd: float) -> float:
    """Relative energy per switch at ``node_nm`` (interpolated), supply ``vdd``."""
    nodes = [n for n, *_ in _STILLMAKER]
    extra = 1.0
    if node_nm > nodes[0]:
        extra, node_nm = math.sqrt(node_nm / nodes[0]), nodes[0]
    elif node_nm < nodes[-1]:
        extra, node_nm = math.sqrt(node_nm / nodes[-1]), nodes[-1]
    for (n_hi, *hi), (n_lo, *lo) in zip(_STILLMAKER, _STILLMAKER[1:]):
        if n_lo <= node_nm <= n_hi:
            t = (n_hi - node_nm) / (n_hi - n_lo)
            e_hi = hi[0] * vdd**2 + hi[1] * vdd + hi[2]
            e_lo = lo[0] * vdd**2 + lo[1] * vdd + lo[2]
            return extra * ((1 - t) * e_hi + t * e_lo)
    raise AssertionError("unreachable")  # pragma: no cover


def energy_scale(
    rule: str, from_nm: float, to_nm: float, from_vdd: float, to_vdd: float
) -> float:
    """Factor turning an energy measured at (from_nm, from_vdd) into one at (to_nm, to_vdd)."""
    if rule == "none":
        return 1.0
    if rule == "dennard":
        return (to_nm / from_nm) * (to_vdd / from_vdd) ** 2
    if rule == "stillmaker":
        return _stillmaker_energy(to_nm, to_vdd) / _stillmaker_energy(from_nm, from_vdd)
    raise ValueError(f"unknown energy scaling rule {rule!r}")
