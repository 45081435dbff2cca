"""Stochastic Frank-Wolfe training: constraint sets (LMOs), SFW optimizers, radii from initialization."""

from .constraints import (
    Constraint,
    KSparsePolytope,
    KSupportBall,
    L1Ball,
    L2Ball,
    LinfBall,
    LpBall,
    NuclearBall,
    ProbabilitySimplex,
    Unconstrained,
    ksupport_norm,
    resolve_k,
)
from .optimizers import SFW, AdaGradSFW, ProjectedSGD
from .recipes import projected_sgd_setup, sfw_setup
from .regions import KINDS, build, constraints_from_init, expected_init_norms, make_feasible_

__all__ = ["KINDS", "SFW", "AdaGradSFW", "Constraint", "KSparsePolytope", "KSupportBall", "L1Ball", "L2Ball",
           "LinfBall", "LpBall", "NuclearBall", "ProbabilitySimplex", "ProjectedSGD", "Unconstrained", "build",
           "constraints_from_init", "expected_init_norms", "ksupport_norm", "make_feasible_", "projected_sgd_setup",
           "resolve_k", "sfw_setup"]
