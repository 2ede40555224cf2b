"""How much the token grain changes a phase's latency: tokens vs one image per token.

Run: ``python -m archsim.engine.granularity [--hw paper-130nm] [--hidden 512]``

For each topology, simulates the forward phase of a 100-image batch and the eval phase of a
1000-image batch once with the default tokens (at most ``max_tokens_per_batch`` per tile)
and once per image (``images_per_token: 1``), and prints both latencies, their relative
difference and the wall time of each simulation. Energy does not depend on the grain.
"""

from __future__ import annotations

import argparse
import time

from archsim.config import RunConfig, validate
from archsim.config.loader import read_yaml_mapping, resolve_preset_path
from archsim.engine.architecture import build_architecture
from archsim.engine.ledger import Ledger


def phase_ps(config: RunConfig, phase: str, batch: int) -> tuple[int, float]:
    engine = build_architecture(config).engine
    start = time.perf_counter()
    durations = engine._simulate([phase], batch, [], 0.0, Ledger(), None)
    return durations[phase], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hw", default="paper-130nm", help="hardware preset (name or YAML path)")
    parser.add_argument("--hidden", type=int, default=512)
    args = parser.parse_args()
    hw = read_yaml_mapping(resolve_preset_path(args.hw, "hwconfigs"))
    print(f"784-{args.hidden}-10 on {args.hw}: phase latency with tokens vs one image per token")
    for topology in ("bus", "mesh", "tree"):
        for phase, batch in (("forward", 100), ("eval", 1000)):
            ps = {}
            for label, per in (("tokens", None), ("per-image", 1)):
                tree = {
                    "tasks": [{"name": "mnist", "dataset": "mnist", "epochs": 1}],
                    "model": {"hidden": [args.hidden]},
                    "learning": {"rule": "qnn-meta", "batch_size": 100},
                    "hardware": dict(hw, images_per_token=per,
                                     interconnect=dict(hw.get("interconnect", {}), topology=topology)),
                }
                ps[label] = phase_ps(validate(RunConfig, tree, "granularity"), phase, batch)
            (t_tok, w_tok), (t_img, w_img) = ps["tokens"], ps["per-image"]
            print(f"{topology:5s} {phase:8s} B={batch:5d}: tokens {t_tok / 1e6:10.3f} us "
                  f"per-image {t_img / 1e6:10.3f} us  diff {100 * (t_tok - t_img) / t_img:+.3f} %  "
                  f"wall {w_tok:.2f} s vs {w_img:.2f} s")


if __name__ == "__main__":
    main()
