"""Stochastic Frank-Wolfe training: constraint sets (LMOs), SFW optimizers, radii from initialization,
structured k-support regions and the penalty baselines of compression-aware training."""

from .constraints import (
    Constraint,
    KSparsePolytope,
    KSupportBall,
    L1Ball,
    L2Ball,
    LinfBall,
    LpBall,
    NonnegativeKSparsePolytope,
    NuclearBall,
    ProbabilitySimplex,
    Unconstrained,
    ksupport_norm,
    resolve_k,
)
from .optimizers import SFW, AdaGradSFW, ProjectedSGD
from .penalties import PENALTIES, PenalizedSGD, penalty_prox, penalty_subgradient, penalty_value
from .regions import KINDS, build, constraints_from_init, expected_init_norms, make_feasible_
from .setups import projected_sgd_setup, sfw_setup
from .singular import top_k_singular
from .structured import DelayedK, GroupKSupportBall, SpectralKSupportBall, k_limit

__all__ = ["KINDS", "PENALTIES", "SFW", "AdaGradSFW", "Constraint", "DelayedK", "GroupKSupportBall",
           "KSparsePolytope", "KSupportBall", "L1Ball", "L2Ball", "LinfBall", "LpBall",
           "NonnegativeKSparsePolytope", "NuclearBall",
           "PenalizedSGD", "ProbabilitySimplex", "ProjectedSGD", "SpectralKSupportBall", "Unconstrained", "build",
           "constraints_from_init", "expected_init_norms", "k_limit", "ksupport_norm", "make_feasible_",
           "penalty_prox", "penalty_subgradient", "penalty_value", "projected_sgd_setup", "resolve_k", "sfw_setup",
           "top_k_singular"]
