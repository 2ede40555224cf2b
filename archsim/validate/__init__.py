"""``archsim validate``: published designs rebuilt from their papers' numbers.

:mod:`~archsim.validate.design` reads a validation YAML (inputs and published headline
figures), :mod:`~archsim.validate.predict` predicts the figures through the chip model,
:mod:`~archsim.validate.table` prints published / simulated / ratio. See docs/validation.md.
"""

from archsim.validate.design import Design, Figure, load_design, shipped_designs
from archsim.validate.predict import Check, Prediction, check_design, predict

__all__ = ["Check", "Design", "Figure", "Prediction", "check_design", "load_design", "predict",
           "shipped_designs"]
