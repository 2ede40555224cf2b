"""The device clock: moves the device store's simulated time on after every batch.

Drift (``device.drift_nu``) ages each device from the time it was last programmed on the
store's clock (``DeviceStore.now_s``). :class:`DeviceClock` is a
:class:`~archsim.learning.trainer.TrainingObserver` that forwards every batch to the
architecture engine's observer (if any) and then advances the store's clock by the batch's
duration, chosen in this order:

1. ``device.seconds_per_batch`` when set: a fixed pace (a chip that sees one batch every so
   many seconds, e.g. learning from a sensor stream);
2. the simulated time the engine spent on the batch (``elapsed_s()`` before and after it):
   what ``archsim run`` uses with any hardware description (the engine always builds a chip);
3. without an engine: the batch's serial programming time, ``pulses x (pulse_width_s +
   verify_time_s)`` summed over its commit reports (0 for evaluation batches) -- the only
   duration the device model knows by itself.

The policy is :meth:`DeviceStore.tick_batch`'s; in ``archsim run`` this class is the one
ticker (``runner.HardwareAttachment`` wraps the engine's observer with it, following
``Architecture.now_s``), so ``device.seconds_per_batch`` is applied once per batch.

Devices written in a batch are stamped with the clock at the end of the batch's compute (the
commit), before the batch's duration is added: ages are exact to one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from archsim.learning.storage import CommitReport
from archsim.learning.trainer import TrainingObserver


class DeviceClock(TrainingObserver):
    """After each batch, forwards it to ``inner`` and ticks the clock of every store.

    ``inner``: the observer to forward to first (the engine's), or None; ``stores``: the
    device stores (a list that may be filled later, as the run creates its store);
    ``elapsed_s``: the engine's simulated seconds so far, or None without an engine. The
    policy (``device.seconds_per_batch``, engine time, programming time) is
    :meth:`DeviceStore.tick_batch`'s.
    """

    def __init__(
        self,
        inner: TrainingObserver | None,
        stores: Sequence,
        elapsed_s: Callable[[], float] | None = None,
    ) -> None:
        self.inner = inner or TrainingObserver()
        self.stores = stores
        self.elapsed_s = elapsed_s

    def on_train_batch(self, batch_size: int, commits: list[CommitReport]) -> None:
        self.inner.on_train_batch(batch_size, commits)
        self._tick(commits)

    def on_eval_batch(self, batch_size: int) -> None:
        self.inner.on_eval_batch(batch_size)
        self._tick([])

    def _tick(self, commits: list[CommitReport]) -> None:
        now = None if self.elapsed_s is None else self.elapsed_s()
        pulses = sum(int(r.pulses.sum()) for r in commits if r.pulses is not None)
        for store in self.stores:
            if hasattr(store, "tick_batch"):
                store.tick_batch(now, pulses * store.model.pulse_time_s)
