"""The ledger: what every component did, per action and phase.

Counts and busy cycles are integers; energy is always derived as count x unit energy
(``unit_energy[(component, action)]``), plus energies reported by the device model
(``extra_energy``, e.g. the programming energy of a write-verify model). Leakage energy is
power x the simulated time of each phase. Integer bookkeeping makes the fast and the exact
schedules give bit-identical totals.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

PHASES = ("forward", "backward", "update", "write", "eval")


@dataclass
class Ledger:
    counts: dict[tuple[str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    busy_cycles: dict[tuple[str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    extra_energy: dict[tuple[str, str, str], float] = field(default_factory=lambda: defaultdict(float))
    phase_time_ps: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, component: str, action: str, phase: str, count: int, busy: int = 0) -> None:
        key = (component, action, phase)
        if count:
            self.counts[key] += count
        if busy:
            self.busy_cycles[key] += busy

    def add_counts(self, counts: tuple[tuple[str, str, int], ...], phase: str, times: int = 1) -> None:
        for component, action, n in counts:
            self.counts[(component, action, phase)] += n * times

    def add_extra_energy(self, component: str, action: str, phase: str, joules: float) -> None:
        self.extra_energy[(component, action, phase)] += joules

    def merge(self, other: "Ledger", times: int = 1) -> None:
        for key, n in other.counts.items():
            self.counts[key] += n * times
        for key, n in other.busy_cycles.items():
            self.busy_cycles[key] += n * times
        for key, e in other.extra_energy.items():
            self.extra_energy[key] += e * times
        for key, t in other.phase_time_ps.items():
            self.phase_time_ps[key] += t * times

    def only(self, phase: str) -> "Ledger":
        """The entries of one phase (for the schedule cache)."""
        out = Ledger()
        for key, n in self.counts.items():
            if key[2] == phase:
                out.counts[key] = n
        for key, n in self.busy_cycles.items():
            if key[2] == phase:
                out.busy_cycles[key] = n
        for key, e in self.extra_energy.items():
            if key[2] == phase:
                out.extra_energy[key] = e
        if phase in self.phase_time_ps:
            out.phase_time_ps[phase] = self.phase_time_ps[phase]
        return out

    # ---- energy -------------------------------------------------------------------------
    def energy_entries(self, unit: dict[tuple[str, str], float]) -> dict[tuple[str, str, str], float]:
        """Dynamic energy (J) of every (component, action, phase)."""
        out: dict[tuple[str, str, str], float] = defaultdict(float)
        for (component, action, phase), n in sorted(self.counts.items()):
            out[(component, action, phase)] += n * unit[(component, action)]
        for key, e in sorted(self.extra_energy.items()):
            out[key] += e
        return out

    def leakage_entries(self, leakage_w: dict[str, float]) -> dict[tuple[str, str, str], float]:
        """Leakage energy (J) = power x simulated time of each phase."""
        out = {}
        for phase, t_ps in sorted(self.phase_time_ps.items()):
            for component, watts in sorted(leakage_w.items()):
                if watts:
                    out[(component, "leakage", phase)] = watts * t_ps * 1e-12
        return out
