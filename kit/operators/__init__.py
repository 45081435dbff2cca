"""Neural Parameter Regression (operator learning for PDEs): problems with reference solvers (``Heat``,
``Burgers``), operators from an initial condition to its solution (``NPR``: a hypernetwork regressing a
low-rank solution network's parameters; the ``DeepONet`` and per-instance ``PINN`` baselines), physics-informed
training on ``kit.train``'s loop, prediction, errors against the reference, fine-tuning."""

from .networks import NPR, PINN, DeepONet, LowRankSolution, Operator
from .problems import SAMPLERS, Burgers, Heat, Problem
from .training import (
    Residuals,
    dataset,
    errors,
    fine_tune,
    mean_square,
    predict,
    relative_l2,
    residual,
    time_to_solution,
    train,
)

__all__ = ["NPR", "PINN", "SAMPLERS", "Burgers", "DeepONet", "Heat", "LowRankSolution", "Operator", "Problem",
           "Residuals", "dataset", "errors", "fine_tune", "mean_square", "predict", "relative_l2", "residual",
           "time_to_solution", "train"]
