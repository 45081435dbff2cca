"""Merlin-Arthur classifiers (Waeldchen, Sharma, Turan, Zimmer, Pokutta 2024): a verifier, Arthur, classifies
from k features chosen by a cooperative prover, Merlin, and must resist an adversarial one, Morgana;
completeness and soundness then bound how much class information the chosen features carry.

``Arthur`` and ``mask_features`` (the verifier and what he sees), the provers behind one interface
(``sfw`` per-sample Frank-Wolfe over ``kit.frankwolfe.NonnegativeKSparsePolytope``, ``network``,
``saliency``, ``random``), the losses, ``play`` (the game on ``kit.train.fit``), the metrics and bounds,
and the MNIST tasks.
"""

from .arthur import Arthur, mask_features
from .game import GameCallback, play
from .losses import ROLES, GameLoss, merlin_loss, morgana_loss, prover_objective
from .metrics import (
    class_priors,
    completeness,
    feature_precision,
    information_from_precision,
    mutual_information_bound,
    precision_bound,
    soundness,
)
from .provers import (
    PROVERS,
    NetworkProver,
    Prover,
    RandomProver,
    SaliencyProver,
    SFWProver,
    check_k,
    make_prover,
    top_k_mask,
)
from .tasks import DEFAULT_PAIR, check_pair, digit_task

__all__ = ["DEFAULT_PAIR", "PROVERS", "ROLES", "Arthur", "GameCallback", "GameLoss", "NetworkProver", "Prover",
           "RandomProver", "SFWProver", "SaliencyProver", "check_k", "check_pair", "class_priors", "completeness",
           "digit_task", "feature_precision", "information_from_precision", "make_prover", "mask_features",
           "merlin_loss", "morgana_loss", "mutual_information_bound", "play", "precision_bound", "prover_objective",
           "soundness", "top_k_mask"]
