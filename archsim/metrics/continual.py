"""Continual-learning metrics of an accuracy matrix.

``R[i][j]`` is the accuracy on task j after training tasks 0..i (rows ``after:<task i>``,
columns ``<task j>``, both in training order; T tasks). Entries above the diagonal (tasks not
trained yet) may be missing and are never used here.

- Average accuracy after the last task, ACC = (1/T) sum_j R[T-1][j]
  (Lopez-Paz & Ranzato, "Gradient Episodic Memory for Continual Learning", NeurIPS 2017).
- Backward transfer, BWT = 1/(T-1) sum_{j<T-1} (R[T-1][j] - R[j][j]) (same paper);
  negative means forgetting.
- Forgetting of task j < T-1, f_j = max_{l in j..T-2} R[l][j] - R[T-1][j]: the drop from the
  best accuracy the task ever had to its final one (Chaudhry, Dokania, Ajanthan & Torr,
  "Riemannian Walk for Incremental Learning", ECCV 2018; the maximum runs over the rows
  after the task was learned); average forgetting F = 1/(T-1) sum_j f_j (same paper).

With a single task BWT and forgetting are undefined (None). All values are fractions
(accuracy 0..1), like the matrix.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

Matrix = dict[str, dict[str, float]]


@dataclass(frozen=True)
class ContinualMetrics:
    """The standard continual-learning summary of one accuracy matrix."""

    average_accuracy: float
    backward_transfer: float | None
    average_forgetting: float | None
    forgetting: dict[str, float]
    accuracy_when_learned: dict[str, float]

    def as_dict(self, digits: int = 6) -> dict[str, Any]:
        def cut(value: Any) -> Any:
            if isinstance(value, float):
                return round(value, digits)
            if isinstance(value, dict):
                return {k: cut(v) for k, v in value.items()}
            return value

        return {k: cut(v) for k, v in asdict(self).items()}


def row_key(task: str) -> str:
    return f"after:{task}"


def lower_triangle(matrix: Matrix, tasks: list[str]) -> list[list[float]]:
    """R[i][j] for j <= i, in training order; a missing entry is an error (a broken matrix)."""
    rows = []
    for i, after in enumerate(tasks):
        row = matrix.get(row_key(after))
        if row is None or any(t not in row for t in tasks[: i + 1]):
            raise ValueError(f"accuracy matrix lacks an entry of row '{row_key(after)}' for tasks {tasks[: i + 1]}")
        rows.append([float(row[t]) for t in tasks[: i + 1]])
    return rows


def continual_metrics(matrix: Matrix, tasks: list[str]) -> ContinualMetrics:
    """ACC, BWT and forgetting (see the module docstring) of ``matrix`` for ``tasks`` in order."""
    if not tasks:
        raise ValueError("continual metrics need at least one task")
    r = lower_triangle(matrix, tasks)
    last = len(tasks) - 1
    final = r[last]
    average = sum(final) / len(tasks)
    learned = {t: r[j][j] for j, t in enumerate(tasks)}
    if last == 0:
        return ContinualMetrics(average, None, None, {}, learned)
    bwt = sum(final[j] - r[j][j] for j in range(last)) / last
    forgetting = {
        tasks[j]: max(r[l][j] for l in range(j, last)) - final[j] for j in range(last)
    }
    return ContinualMetrics(average, bwt, sum(forgetting.values()) / last, forgetting, learned)


def continual_section(
    accuracy: Matrix, validation: Matrix, tasks: list[str]
) -> dict[str, Any]:
    """The summary's ``continual`` section: metrics on the test and validation matrices.

    A matrix that was not evaluated (no test set with ``data.evaluate_test: false``, no
    validation set with ``data.validation_size: 0``) has no entry.
    """
    section = {}
    for name, matrix in (("test", accuracy), ("validation", validation)):
        try:
            section[name] = continual_metrics(matrix, tasks).as_dict()
        except ValueError:
            pass
    return section
