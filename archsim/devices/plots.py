"""Figures of the device state (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _snapshot(source: Any) -> dict[str, np.ndarray]:
    if isinstance(source, dict):
        return source
    return source.conductance_snapshot()


def plot_conductance_distributions(
    snapshot_or_store: Any, path: str | Path, bins: int = 120, title: str | None = None
) -> Path:
    """Histogram of the programmed conductance of every device, one colour per target level.

    ``snapshot_or_store`` is a :class:`~archsim.devices.store.DeviceStore` or its
    ``conductance_snapshot()``. Stuck devices are drawn apart in grey. Dashed lines mark the
    target conductances. Returns the PNG path.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    snap = _snapshot(snapshot_or_store)
    state_g = np.asarray(snap["state_g_s"], dtype=np.float64)
    per_state: list[list[np.ndarray]] = [[] for _ in state_g]
    stuck_g: list[np.ndarray] = []
    for key in snap:
        if not (key.startswith("layer") and "." in key and key.split(".")[1].startswith("g")):
            continue
        layer, name = key.split(".")
        plane = name[1:].removesuffix("_s")
        g = np.asarray(snap[key]).ravel()
        state = np.asarray(snap[f"{layer}.state{plane}"]).ravel()
        stuck = np.asarray(snap[f"{layer}.stuck{plane}"]).ravel()
        for s in range(state_g.size):
            per_state[s].append(g[(state == s) & ~stuck])
        stuck_g.append(g[stuck])
    g_all = [np.concatenate(chunks) if chunks else np.zeros(0) for chunks in per_state]
    stuck_all = np.concatenate(stuck_g) if stuck_g else np.zeros(0)

    lo = min([state_g.min()] + [float(x.min()) for x in g_all if x.size])
    hi = max([state_g.max()] + [float(x.max()) for x in g_all if x.size])
    pad = 0.03 * (hi - lo if hi > lo else 1.0)
    edges = np.linspace(lo - pad, hi + pad, bins + 1) * 1e6
    fig, ax = plt.subplots(figsize=(7.0, 4.0), dpi=120)
    colours = plt.cm.viridis(np.linspace(0.05, 0.9, max(state_g.size, 1)))
    for s, (g, colour) in enumerate(zip(g_all, colours)):
        if g.size:
            ax.hist(g * 1e6, bins=edges, color=colour, alpha=0.75,
                    label=f"G = {state_g[s] * 1e6:.3g} uS (n={g.size})")
        ax.axvline(state_g[s] * 1e6, color=colour, linestyle="--", linewidth=0.8)
    if stuck_all.size:
        ax.hist(stuck_all * 1e6, bins=edges, color="0.5", alpha=0.8, label=f"stuck (n={stuck_all.size})")
    ax.set_yscale("log")
    ax.set_xlabel("programmed conductance (uS)")
    ax.set_ylabel("devices")
    ax.set_title(title or "Programmed conductance per target level")
    ax.legend(fontsize=7, loc="upper center")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    plt.close(fig)
    return out
