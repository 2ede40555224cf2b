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

Devices written in a batch are stamped with the clock at the end of the batch's compute (the
commit), before the batch's duration is added: ages are exact to one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from archsim.learning.storage import CommitReport
from archsim.learning.trainer import TrainingObserver


class DeviceClock(TrainingObserver):
    """Advances the clock of every store in ``stores`` after each batch (see module doc).

    ``inner``: the observer to forward to first (the engine's), or None; ``stores``: the
    device stores (a list that may be filled later, as the run creates its store);
    ``elapsed_s``: simulated seconds so far of the engine, or None without one;
    ``seconds_per_batch``: fixed seconds per batch, or None.
    """

    def __init__(
        self,
        inner: TrainingObserver | None,
        stores: Sequence,
        elapsed_s: Callable[[], float] | None = None,
        seconds_per_batch: float | None = None,
    ) -> None:
        self.inner = inner or TrainingObserver()
        self.stores = stores
        self.elapsed_s = elapsed_s
        self.seconds_per_batch = seconds_per_batch
        self._last_s = elapsed_s() if elapsed_s is not None else 0.0

    def on_train_batch(self, batch_size: int, commits: list[CommitReport]) -> None:
        self.inner.on_train_batch(batch_size, commits)
        self._advance(commits)

    def on_eval_batch(self, batch_size: int) -> None:
        self.inner.on_eval_batch(batch_size)
        self._advance([])

    def _advance(self, commits: list[CommitReport]) -> None:
        if self.seconds_per_batch is not None:
            seconds = self.seconds_per_batch
        elif self.elapsed_s is not None:
            now = self.elapsed_s()
            seconds, self._last_s = now - self._last_s, now
        else:
            seconds = None
        for store in self.stores:
            if not hasattr(store, "advance_time_s"):
                continue
            if seconds is None:
                pulses = sum(int(r.pulses.sum()) for r in commits if r.pulses is not None)
                store.advance_time_s(pulses * store.model.pulse_time_s)
            else:
                store.advance_time_s(seconds)
