"""The write-verify of one commit of the paper network's first layer, its two compiled loops
alone and the whole commit, in one process.

    python benchmarks/bench_write_verify.py [--hw paper-130nm] [--repeats 7] [--rounds 5] [--against DIR]
    python benchmarks/bench_write_verify.py --steps 40 [--hw paper-130nm]

Sets up the store as ``bench_step_parts.py`` does (784-4096-10 qnn-meta, three training
batches, then hidden weights moved by about one Adam step, ~83 k level changes in layer 1
on paper-130nm), records one layer-1 commit's write-verify -- the sizes of its float64 fills
(cycle-to-cycle spread per pulse round, relaxation) and the inputs of every pulse round --
and times, alternating in ``--rounds`` rounds of ``--repeats`` calls each:

* ``float64 draws``: those fills in a row through :class:`~archsim.devices.normal.NormalStream`
  (the compiled ziggurat), and numpy's own ``rng.standard_normal(out=...)`` for reference;
* ``pulse rounds``: the recorded rounds through ``pulse_step`` of
  ``archsim/devices/kernels.py``;
* ``write-verify``: the commit's ``DevicePlane._write_verify`` calls (one per plane), replayed on their recorded inputs, all the rounds in one
  compiled call (``write_verify_rounds``) and one call per round (``_pulse_rounds``: draws,
  ``pulse_step``, numpy sums), checked identical first;
* ``layer-1 commit``: ``store.commit`` itself, commits alternating between the two hidden
  states, with the rounds in one call and with one call per round.

Prints median and best wall and CPU milliseconds, and the ratios one call / one call per
round. ``--steps N`` instead trains the paper network (10 000-image config, batches of 100,
after 5 warm-up batches) for N batches, running every write-verify of those steps both ways
on the same inputs (the order alternating from call to call; results checked identical, the
run going on from the one-call result), and prints the write-verify's wall and CPU per
batch each way and their ratio. ``--against DIR`` also loads ``DIR``'s
``archsim/devices/normal.py`` and ``kernels.py`` (another checkout, e.g. the main branch's)
as modules of their own, checks that they give the same draws, generator state and pulse
results, times them alongside (the commit with them patched into the store's
``archsim/devices/arrays.py``) and prints the ratios this tree / DIR of the medians and of the bests.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import archsim  # noqa: E402,F401 - before numpy: OpenBLAS loads with archsim's thread settings
import numpy as np  # noqa: E402

from archsim.devices import arrays, kernels, normal  # noqa: E402
from archsim.engine import build_architecture  # noqa: E402
from archsim.experiment import build_learner, seed_streams  # noqa: E402
from benchmarks.bench_paper import build_archsim, mnist, paper_config  # noqa: E402
from benchmarks.bench_read_noise import load_module  # noqa: E402
from benchmarks.common import timed  # noqa: E402


def moved_store(hw: str, move: float = 0.004):  # noqa: ANN201 - (store, hidden, moved)
    """The layer store after three training batches, the hidden weights and the same moved
    by a normal step of standard deviation ``move`` (0.004: about one Adam step, as
    ``bench_step_parts.py``)."""
    config = paper_config(1000, hw)
    arch = build_architecture(config)
    rngs = seed_streams(0)
    learner = build_learner(config, rngs["init"], rngs["device"], arch.store_factory, arch.observer, arch.mvm)
    x_all, y_all = mnist(1000)
    for start in range(0, 300, 100):
        learner.train_batch(x_all[start:start + 100], y_all[start:start + 100])
    hidden = [h.copy() for h in learner.net.hidden]
    moved = [h + np.random.default_rng(7).normal(0, move, h.shape).astype(np.float32) for h in hidden]
    return learner.store, hidden[0], moved[0]


def record_commit(store, target: np.ndarray) -> tuple[list[int], list[tuple], list[tuple]]:  # noqa: ANN001
    """Commit ``target`` to layer 1 with one call per pulse round, recording the sizes of its
    float64 fills (per pulse round, then the relaxation's), a copy of the inputs of each
    pulse round and of each write-verify (:func:`replay_write_verify`)."""
    sizes: list[int] = []
    rounds: list[tuple] = []
    verifies: list[tuple] = []

    class Recording(normal.NormalStream):
        def fill(self, out: np.ndarray) -> None:
            sizes.append(out.size)
            super().fill(out)

    def pulse_step(*args):  # noqa: ANN002, ANN202
        rounds.append(tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args))
        return kernels.pulse_step(*args)

    write_verify = arrays.DevicePlane._write_verify

    def recorded(plane, work, model, stream):  # noqa: ANN001, ANN202
        verifies.append((plane, arrays._WriteVerify(*(a.copy() for a in vars(work).values())), model,
                         stream.rng, None if stream.gen is None else stream.gen.copy()))
        return write_verify(plane, work, model, stream)

    with (patched(arrays, NormalStream=Recording, pulse_step=pulse_step, ROUNDS_IN_ONE_CALL=False),
          patched(arrays.DevicePlane, _write_verify=recorded)):
        store.commit(0, target)
    return sizes, rounds, verifies


def replay_write_verify(verifies: list[tuple], one_call: bool) -> Callable[[], list]:
    """The recorded write-verifies again, each from its recorded inputs (restored in place,
    with the generator, before every call), the rounds in one call or one call per round;
    returns what each returned, its conductances, pulses and generator after."""
    saved = [(work, gen) for _, work, _, _, gen in verifies]
    live = [(plane, arrays._WriteVerify(*(a.copy() for a in vars(work).values())), model,
             normal.NormalStream(rng)) for plane, work, model, rng, _ in verifies]

    def run() -> list:
        out = []
        with patched(arrays, ROUNDS_IN_ONE_CALL=one_call):
            for (plane, work, model, stream), (start, gen) in zip(live, saved):
                np.copyto(work.g, start.g)
                np.copyto(work.pulses, start.pulses)
                stream.gen = None if gen is None else gen.copy()
                result = plane._write_verify(work, model, stream)
                out.append((result, work.g, work.pulses, stream.gen))
        return out
    return run


def check_same_write_verify(verifies: list[tuple]) -> None:
    """The rounds in one call give what one call per round gives, bit for bit."""
    one, per_round = replay_write_verify(verifies, True)(), replay_write_verify(verifies, False)()
    for a, b in zip(one, per_round, strict=True):
        if not (a[0] == b[0] and all(np.array_equal(x, y) for x, y in zip(a[1:], b[1:]))):
            sys.exit("the write-verify's rounds in one call differ from one call per round")


@contextmanager
def patched(module, **names) -> Iterator[None]:  # noqa: ANN001, ANN003
    """Within: ``module``'s ``names`` replaced (each must exist)."""
    missing = [name for name in names if not hasattr(module, name)]
    if missing:
        sys.exit(f"{module.__name__} has no {', '.join(missing)}: this benchmark needs updating")
    saved = {name: getattr(module, name) for name in names}
    for name, value in names.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)


def draws_of(module, sizes: list[int]) -> Callable[[np.random.Generator, list[np.ndarray]], None]:  # noqa: ANN001
    """The fills ``sizes`` in a row through ``module``'s NormalStream."""
    def fill_all(rng: np.random.Generator, outs: list[np.ndarray]) -> None:
        with module.NormalStream(rng) as stream:
            for out in outs:
                stream.fill(out)
    return fill_all


def numpy_draws(rng: np.random.Generator, outs: list[np.ndarray]) -> None:
    for out in outs:
        rng.standard_normal(out.size, out=out)


def check_same_draws(variants: dict[str, Callable], sizes: list[int]) -> None:
    """Every variant gives numpy's draws and leaves the generator as numpy does."""
    results = []
    for fill_all in variants.values():
        rng, outs = np.random.default_rng(9), [np.empty(n) for n in sizes]
        rng.random(1, dtype=np.float32)  # a buffered half-word, which float64 draws keep
        fill_all(rng, outs)
        results.append((np.concatenate(outs).view(np.uint64), rng.bit_generator.state))
    for (out, state), name in zip(results[1:], list(variants)[1:]):
        if not (np.array_equal(out, results[0][0]) and state == results[0][1]):
            sys.exit(f"{name} draws differently from {next(iter(variants))}")


def leading_arguments(kernel):  # noqa: ANN001, ANN201 - a numba dispatcher
    """``kernel`` called with as many of the given arguments as it takes: another checkout's
    ``pulse_step`` may take fewer (before h21-commit it had no chunk scratch arguments,
    which come last)."""
    count = kernel.py_func.__code__.co_argcount
    return lambda *args: kernel(*args[:count])


def check_same_pulses(variants: dict[str, Callable], rounds: list[tuple]) -> None:
    """Every variant of ``pulse_step`` gives the same conductances, pulse counts, energies'
    inputs and positions left on the recorded rounds (each on fresh copies)."""
    results = []
    for step in variants.values():
        got = []
        for inputs in rounds:
            args = [a.copy() if isinstance(a, np.ndarray) else a for a in inputs]
            left = step(*args)
            got.append((left, args[2], args[8], args[9], args[10], args[11][:left]))
        results.append(got)
    for got, name in zip(results[1:], list(variants)[1:]):
        for a, b in zip(got, results[0]):
            if not (a[0] == b[0] and all(np.array_equal(x, y) for x, y in zip(a[1:], b[1:]))):
                sys.exit(f"{name} pulses differently from {next(iter(variants))}")


def both_ways_in_steps(hw: str, steps: int) -> None:
    """``--steps``: the write-verify of ``steps`` training batches, each call both ways."""
    config = paper_config(10_000, hw)
    x, y = mnist(10_000)
    learner, rngs = build_archsim(config)
    write_verify = arrays.DevicePlane._write_verify
    totals = {True: [0.0, 0.0], False: [0.0, 0.0]}
    calls = [0]

    def both(plane, work, model, stream):  # noqa: ANN001, ANN202
        if stream.gen is None and work.sigma.size:
            sys.exit("the write-verify draws through numpy here (no PCG64 fast path): cannot run it twice")
        start = [a.copy() for a in vars(work).values()]
        gen = None if stream.gen is None else stream.gen.copy()
        results = {}
        calls[0] += 1
        for one_call in (True, False) if calls[0] % 2 else (False, True):
            copy = arrays._WriteVerify(*(a.copy() for a in start))
            stream.gen = None if gen is None else gen.copy()
            with patched(arrays, ROUNDS_IN_ONE_CALL=one_call):
                cpu, wall = time.process_time(), time.perf_counter()
                result = write_verify(plane, copy, model, stream)
                totals[one_call][0] += time.perf_counter() - wall
                totals[one_call][1] += time.process_time() - cpu
            results[one_call] = (result, copy, stream.gen)
        (got, ours, gen_ours), (want, theirs, gen_theirs) = results[True], results[False]
        if not (got == want and np.array_equal(ours.g, theirs.g) and np.array_equal(ours.pulses, theirs.pulses)
                and (gen_ours is None or np.array_equal(gen_ours, gen_theirs))):
            sys.exit("the write-verify's rounds in one call differ from one call per round")
        for mine, theirs_ in zip(vars(work).values(), vars(ours).values()):
            np.copyto(mine, theirs_)
        stream.gen = gen_ours
        return got

    order = rngs["shuffle"].permutation(len(x))
    batches = [order[i * 100:(i + 1) * 100] for i in range(5 + steps)]
    with patched(arrays.DevicePlane, _write_verify=both):
        for i, batch in enumerate(batches):
            if i == 5:  # after the warm-up
                totals = {True: [0.0, 0.0], False: [0.0, 0.0]}
                calls[0] = 0
            learner.train_batch(x[batch], y[batch])
    print(f"write-verify of {steps} training batches on {hw} ({calls[0] / steps:.1f} calls a batch, each both "
          f"ways, identical), ms per batch:")
    for one_call, name in ((True, "rounds in one call"), (False, "one call per round")):
        print(f"  {name:<20} wall {totals[one_call][0] / steps * 1e3:6.2f}  CPU {totals[one_call][1] / steps * 1e3:6.2f}")
    print(f"one call / one call per round: wall {totals[True][0] / totals[False][0]:.2f}, "
          f"CPU {totals[True][1] / totals[False][1]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hw", default="paper-130nm")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", type=Path, default=None, help="root of another archsim checkout")
    parser.add_argument("--steps", type=int, default=0,
                        help="time the write-verify of this many training batches both ways instead")
    args = parser.parse_args()
    if args.steps > 0:
        both_ways_in_steps(args.hw, args.steps)
        return
    if not normal.fast_path64_ok():
        sys.exit("this numpy draws differently from the compiled kernel: the store uses numpy's own draws")
    other_normal = other_kernels = None
    if args.against:
        tree = args.against.resolve()
        other_normal = load_module(tree, "archsim/devices/normal.py", "normal_against")
        other_kernels = load_module(tree, "archsim/devices/kernels.py", "kernels_against")
    store, hidden, moved = moved_store(args.hw)
    store.commit(0, moved)
    sizes, rounds, verifies = record_commit(store, hidden)
    plane, work, model, rng, gen = verifies[0]
    stream = normal.NormalStream(rng)
    stream.gen = gen
    if not arrays._rounds_in_one_call(work.g.size, work, stream):
        sys.exit("the rounds of this commit cannot run in one call here (split rounds, or numpy sums differently)")
    check_same_write_verify(verifies)

    draws = {"float64 draws, this tree": draws_of(normal, sizes)}
    pulses = {"pulse rounds, this tree": kernels.pulse_step}
    if other_normal is not None:
        draws["float64 draws, --against"] = draws_of(other_normal, sizes)
        pulses["pulse rounds, --against"] = leading_arguments(other_kernels.pulse_step)
    draws["float64 draws, numpy standard_normal"] = numpy_draws
    check_same_draws(draws, sizes)
    check_same_pulses(pulses, rounds)

    rng, outs = np.random.default_rng(1), [np.empty(n) for n in sizes]
    work = [list(inputs) for inputs in rounds]  # replayed in place: the same work every call
    parts: dict[str, Callable[[], object]] = {name: (lambda f=f: f(rng, outs)) for name, f in draws.items()}
    parts |= {name: (lambda step=step: [step(*inputs) for inputs in work]) for name, step in pulses.items()}
    parts["write-verify, one call"] = replay_write_verify(verifies, True)
    parts["write-verify, one call per round"] = replay_write_verify(verifies, False)
    turn = [0]

    def commit() -> None:  # alternate: every call changes the same ~changes weights
        turn[0] ^= 1
        store.commit(0, moved if turn[0] else hidden)

    def commit_per_round() -> None:
        with patched(arrays, ROUNDS_IN_ONE_CALL=False):
            commit()

    parts["layer-1 commit, this tree"] = commit
    parts["layer-1 commit, one call per round"] = commit_per_round
    if other_normal is not None:
        def commit_against() -> None:
            with patched(arrays, NormalStream=other_normal.NormalStream, ROUNDS_IN_ONE_CALL=False,
                         pulse_step=leading_arguments(other_kernels.pulse_step)):
                commit()
        parts["layer-1 commit, --against"] = commit_against
    times = timed(parts, args.rounds, args.repeats)

    print(f"layer-1 commit on {args.hw}: {sum(sizes)} float64 draws in {len(sizes)} fills, "
          f"{sum(r[2].size if r[1] else r[0].size for r in rounds)} device pulses in {len(rounds)} rounds; "
          f"{args.rounds} x {args.repeats} calls each" + (f"; --against {args.against}" if args.against else ""))
    print(f"  {'part':<40} {'wall med/best ms':>17} {'CPU med/best ms':>17}")
    for name, (wall, cpu) in times.items():
        wall_ms, cpu_ms = np.array(wall) * 1e3, np.array(cpu) * 1e3
        print(f"  {name:<40} {np.median(wall_ms):8.2f} {wall_ms.min():8.2f} {np.median(cpu_ms):8.2f} {cpu_ms.min():8.2f}")
    for part, ours, theirs in (("write-verify", "write-verify, one call", "write-verify, one call per round"),
                               ("layer-1 commit", "layer-1 commit, this tree", "layer-1 commit, one call per round")):
        print(f"{part}, one call / one call per round: {ratios(times[ours], times[theirs])}")
    if other_normal is not None:
        for part in ("float64 draws", "pulse rounds", "layer-1 commit"):
            print(f"{part}, this tree / --against: {ratios(times[f'{part}, this tree'], times[f'{part}, --against'])}")


def ratios(ours: tuple[list, list], theirs: tuple[list, list]) -> str:
    """Wall and CPU ratios of two parts' (wall, CPU) times, of the medians and of the bests."""
    return (f"wall {np.median(ours[0]) / np.median(theirs[0]):.2f}, CPU {np.median(ours[1]) / np.median(theirs[1]):.2f} "
            f"(medians); wall {min(ours[0]) / min(theirs[0]):.2f}, CPU {min(ours[1]) / min(theirs[1]):.2f} (bests)")


if __name__ == "__main__":
    main()
