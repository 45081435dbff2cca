"""Federated learning by knowledge distillation (FedDistill) and its Byzantine resilience.

Clients train locally and send their softmax predictions on a shared public dataset; the server
aggregates them per sample and distils its model on the result. ``attacks`` builds what Byzantine
clients send instead (in prediction space, and update-vector attacks for the FedAvg baseline);
``defences`` holds the robust aggregators and ExpGuard, which tracks per-client weights across
rounds. ``clients`` splits private data (IID or Dirichlet) and trains clients as one stacked model;
``simulation`` runs FedDistill and FedAvg rounds in process (seeded, checkpointed, resumable);
``flower`` runs the same client and server steps as a Flower ClientApp and Strategy. Notebook 07's
experiments are in :mod:`kit.recipes.federated`.
"""

from .attacks import (
    ATTACKS,
    FEDAVG_ATTACKS,
    attack,
    attack_weights,
    check_predictions,
    check_vectors,
    class_similarity,
)
from .clients import Stacked, batchable, partition, train_clients
from .defences import (
    DEFAULT_QUANTILE,
    DEFENCES,
    FEDAVG_DEFENCES,
    WEIGHTED,
    Aggregate,
    ExpGuard,
    aggregate,
    aggregate_vectors,
    renormalise,
)
from .simulation import (
    PROTOCOLS,
    FLConfig,
    FLHistory,
    client_predictions,
    client_seed,
    round_seed,
    server_step,
    setup,
    simulate,
)

__all__ = [
    "ATTACKS",
    "DEFAULT_QUANTILE",
    "DEFENCES",
    "FEDAVG_ATTACKS",
    "FEDAVG_DEFENCES",
    "PROTOCOLS",
    "WEIGHTED",
    "Aggregate",
    "ExpGuard",
    "FLConfig",
    "FLHistory",
    "Stacked",
    "aggregate",
    "aggregate_vectors",
    "attack",
    "attack_weights",
    "batchable",
    "check_predictions",
    "check_vectors",
    "class_similarity",
    "client_predictions",
    "client_seed",
    "partition",
    "renormalise",
    "round_seed",
    "server_step",
    "setup",
    "simulate",
    "train_clients",
]
