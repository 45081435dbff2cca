"""In-process federated runs: FedDistill (clients share predictions on a public set, the server distils)
and FedAvg (clients share weights) with the same clients, attacks and defences; seeded, checkpointed
per round, resumable.

Byzantine clients are the last ``round(byzantine * clients)`` client ids; every defence is invariant to
client order, so this only makes plots of per-client weights readable.
"""

from __future__ import annotations

import copy
import os
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from .. import data as data_mod
from ..budget import get_device
from ..models import MODELS, create
from ..runs import Checkpoints, derive_seed, fingerprint, fingerprint_data, fingerprint_model, hash_tensors
from ..seeding import check_seed, generator, seed_everything
from ..train import evaluate, fit
from ..validate import check_choice, check_float, check_int
from .attacks import ATTACKS, FEDAVG_ATTACKS, attack, attack_weights
from .clients import dataset_tensors, local_steps, partition, train_clients
from .defences import DEFENCES, FEDAVG_DEFENCES, Aggregate, ExpGuard, aggregate, aggregate_vectors

PROTOCOLS = ("feddistill", "fedavg")
# "honest": the private data is split among the honest clients (each holds 1 / honest of it); "all": among
# every client as in the reference code, the attackers' shares unused, so honest clients hold less data
SPLITS = ("honest", "all")


@dataclass(frozen=True)
class FLConfig:
    """One federated run. ``byzantine`` is the fraction of clients that attack, in [0, 1)."""

    protocol: str = "feddistill"
    dataset: str = "mnist5k"
    clients: int = 10
    byzantine: float = 0.0
    attack: str = "none"
    defence: str = "mean"
    expguard: bool = False
    eta: float = 2.0
    rounds: int = 10
    local_epochs: float = 1.0
    distill_epochs: int = 2
    public: int = 1000
    alpha: float | None = None  # Dirichlet concentration; None: IID
    split: str = "honest"  # private data split among the honest clients only, or among "all" (attackers' unused)
    attack_fraction: float = 1.0
    model: str = "mlp"
    widths: tuple[int, ...] = (200,)
    lr: float = 0.05
    batch_size: int = 32
    batched: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice(self.protocol, "protocol", PROTOCOLS)
        clients = check_int(self.clients, "clients", low=1)
        byzantine = check_float(self.byzantine, "byzantine (attacker fraction)", low=0.0, high=1.0, high_open=True)
        for name in ("expguard", "batched"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False; got {type(getattr(self, name)).__name__} "
                                f"{getattr(self, name)!r}")
        if self.n_byzantine > clients - 1:
            raise ValueError(f"byzantine={self.byzantine} makes {self.n_byzantine} attackers among {clients} clients; "
                             f"at least one client must be honest")
        if byzantine > 0 and self.n_byzantine == 0:
            raise ValueError(f"byzantine={self.byzantine} of clients={clients} rounds to 0 attackers, so the run would "
                             f"have no attack; use byzantine={1 / clients:.4g} for one attacker, or 0")
        if abs(self.n_byzantine - byzantine * clients) > 1e-9:
            warnings.warn(f"byzantine={self.byzantine} of clients={clients} is {byzantine * clients:g} clients: "
                          f"rounded to {self.n_byzantine} attackers, an actual fraction of "
                          f"{self.byzantine_fraction:.4g} (FLHistory.byzantine_fraction records it)",
                          UserWarning, stacklevel=3)
        attacks = ATTACKS if self.protocol == "feddistill" else FEDAVG_ATTACKS
        defences = DEFENCES if self.protocol == "feddistill" else FEDAVG_DEFENCES
        check_choice(self.attack, "attack", attacks)
        check_choice(self.defence, "defence", defences)
        check_choice(self.model, "model", MODELS)
        check_choice(self.split, "split", SPLITS)
        if self.expguard and self.protocol != "feddistill":
            raise ValueError("expguard wraps prediction defences; use it with protocol='feddistill'")
        check_float(self.eta, "eta", low=0.0, low_open=True)
        check_int(self.rounds, "rounds", low=1)
        check_float(self.local_epochs, "local_epochs", low=0.0, low_open=True)
        check_int(self.distill_epochs, "distill_epochs", low=1)
        check_int(self.public, "public (public set size)", low=1)
        if self.alpha is not None:
            check_float(self.alpha, "alpha (Dirichlet concentration)", low=0.0, low_open=True)
        check_float(self.attack_fraction, "attack_fraction", low=0.0, high=1.0, low_open=True)
        check_float(self.lr, "lr", low=0.0, low_open=True)
        check_int(self.batch_size, "batch_size", low=1)
        check_seed(self.seed)

    @property
    def n_byzantine(self) -> int:
        """The number of attackers: round(byzantine * clients)."""
        return round(self.byzantine * self.clients)

    @property
    def byzantine_fraction(self) -> float:
        """The actual attacker fraction after rounding to whole clients."""
        return self.n_byzantine / self.clients

    def key(self) -> str:
        """A short hash of every setting (names the run's checkpoint files)."""
        return fingerprint(asdict(self))[:12]


@dataclass
class FLHistory:
    """Per-round records: server test accuracy, client weights (ExpGuard), outlier scores, and the fraction of
    public samples whose aggregated target names another class than the honest clients' mean (``target_flips``)."""

    config: FLConfig
    records: list[dict[str, Any]] = field(default_factory=list)

    def __getitem__(self, key: str) -> list[Any]:
        return [r[key] for r in self.records]

    @property
    def accuracy(self) -> float:
        """Server test accuracy after the last round."""
        return self.records[-1]["accuracy"]

    @property
    def byzantine_fraction(self) -> float:
        """The attacker fraction the run actually had (whole clients)."""
        return self.config.byzantine_fraction

    def attacker_weight(self) -> list[float]:
        """Total ExpGuard weight of the byzantine clients after each round."""
        b = self.config.n_byzantine
        return [sum(r["weights"][len(r["weights"]) - b:]) if b else 0.0 for r in self.records]


@dataclass
class Federation:
    """Everything a run needs that does not change between rounds."""

    server: nn.Module
    train: TensorDataset
    parts: list[torch.Tensor]
    public_x: torch.Tensor
    test: Any
    num_classes: int


def setup(cfg: FLConfig, budget: str | None = None, device: str | torch.device | None = None) -> Federation:
    """Data, public set, client parts and the initial server model of a run (deterministic in the seed).

    The server model and the public set go to ``device`` (default :func:`kit.get_device`); clients,
    aggregation and distillation follow them there."""
    splits = data_mod.load(cfg.dataset, seed=cfg.seed, budget=budget)
    x, y = dataset_tensors(splits.train)
    if cfg.public >= len(x) - cfg.clients:
        raise ValueError(f"public={cfg.public} leaves too little private data ({len(x)} training examples, "
                         f"{cfg.clients} clients)")
    order = torch.randperm(len(x), generator=generator(cfg.seed))
    public, private = order[: cfg.public], order[cfg.public :]
    honest = cfg.clients - cfg.n_byzantine
    parts = partition(y[private], honest if cfg.split == "honest" else cfg.clients, alpha=cfg.alpha,
                      seed=cfg.seed)[:honest]
    seed_everything(cfg.seed)
    # widths size the MLP's hidden layers; the CNNs keep their own defaults
    extra = {"widths": cfg.widths} if cfg.model == "mlp" else {}
    dev = get_device(device)
    server = create(cfg.model, splits.input_shape, splits.num_classes, **extra).to(dev)
    train = TensorDataset(x[private], y[private])
    return Federation(server, train, parts, x[public].to(dev), splits.test, splits.num_classes)


def soft_cross_entropy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against soft targets (probability vectors), no temperature."""
    return F.cross_entropy(output, target)


@torch.no_grad()
def _predict(models: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    outs = []
    for m in models:
        m.eval()
        outs.append(torch.softmax(m(x), dim=-1))
    return torch.stack(outs)


def _vector(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _set_vector(model: nn.Module, vector: torch.Tensor) -> None:
    with torch.no_grad():
        start = 0
        for p in model.parameters():
            p.copy_(vector[start : start + p.numel()].view_as(p))
            start += p.numel()


def round_seed(cfg: FLConfig, r: int) -> int:
    """The seed of round ``r`` (0-based): each round's randomness comes from (seed, round) alone, so a resumed
    run, or the same round run through Flower, draws the same batches and attacks."""
    return derive_seed(cfg.seed, r)


def client_seed(cfg: FLConfig, r: int, client: int) -> int:
    """The seed of client ``client``'s batches in round ``r``: the same whatever batch of clients it trains with."""
    return derive_seed(cfg.seed, r, client)


def client_predictions(cfg: FLConfig, fed: Federation, r: int, clients: list[int] | None = None,
                       server_state: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """Honest clients' step: start from the server model, train locally, predict the public set.

    Returns ``(len(clients), public, classes)`` probabilities; ``clients`` defaults to every honest client.
    """
    ids = list(range(len(fed.parts))) if clients is None else list(clients)
    models = [copy.deepcopy(fed.server) for _ in ids]
    if server_state is not None:
        for m in models:
            m.load_state_dict(server_state)
    steps = local_steps([len(p) for p in fed.parts], cfg.batch_size, cfg.local_epochs)
    train_clients(models, fed.train, [fed.parts[i] for i in ids], lr=cfg.lr, batch_size=cfg.batch_size,
                  seed=round_seed(cfg, r), seeds=[client_seed(cfg, r, i) for i in ids], steps=steps,
                  batched=cfg.batched and len(ids) > 1)
    return _predict(models, fed.public_x)


def server_step(cfg: FLConfig, fed: Federation, honest: torch.Tensor, r: int, guard: ExpGuard | None
                ) -> tuple[dict[str, Any], Aggregate]:
    """Server's step: add the byzantine clients' predictions, aggregate, distil, evaluate; returns the
    round's record and the aggregate."""
    seed = round_seed(cfg, r)
    predictions = honest
    if cfg.n_byzantine:
        bad = attack(cfg.attack, honest, cfg.n_byzantine, generator=generator(seed), fraction=cfg.attack_fraction,
                     validate=False)
        predictions = torch.cat([honest, bad])
    # the clients' softmax outputs need no value check (it would make an accelerator wait every round)
    result = (guard(predictions, validate=False) if guard is not None
              else aggregate(cfg.defence, predictions, validate=False))
    fit(fed.server, TensorDataset(fed.public_x, result.value), epochs=cfg.distill_epochs, lr=cfg.lr,
        batch_size=cfg.batch_size, loss_fn=soft_cross_entropy, seed=seed, progress=False, desc="distil")
    # how often the attack changed the label the server is taught, against the honest clients' consensus
    flips = (result.value.argmax(-1) != honest.mean(0).argmax(-1)).float().mean().item()
    # how sure the honest clients are: the mean top probability of their public-set predictions
    confidence = honest.max(-1).values.mean().item()
    record: dict[str, Any] = {"round": r + 1, "scores": result.scores.tolist(), "target_flips": flips,
                              "honest_confidence": confidence,
                              "accuracy": evaluate(fed.server, fed.test)["accuracy"]}
    if guard is not None:
        record["weights"] = guard.weights.tolist()
    return record, result


def _fedavg_round(cfg: FLConfig, fed: Federation, r: int) -> dict[str, Any]:
    seed = round_seed(cfg, r)
    models = [copy.deepcopy(fed.server) for _ in fed.parts]
    train_clients(models, fed.train, fed.parts, epochs=cfg.local_epochs, lr=cfg.lr, batch_size=cfg.batch_size,
                  seed=seed, seeds=[client_seed(cfg, r, i) for i in range(len(models))], batched=cfg.batched)
    base = _vector(fed.server)
    updates = torch.stack([_vector(c) - base for c in models])
    if cfg.n_byzantine:
        updates = torch.cat([updates, attack_weights(cfg.attack, updates, cfg.n_byzantine, generator=generator(seed),
                                                     global_vector=base)])
    _set_vector(fed.server, base + aggregate_vectors(cfg.defence, updates, n_byzantine=cfg.n_byzantine))
    return {"round": r + 1, "accuracy": evaluate(fed.server, fed.test)["accuracy"]}


def _round(cfg: FLConfig, fed: Federation, r: int, guard: ExpGuard | None) -> dict[str, Any]:
    if cfg.protocol == "fedavg":
        return _fedavg_round(cfg, fed, r)
    return server_step(cfg, fed, client_predictions(cfg, fed, r), r, guard)[0]


CHECKPOINT_FORMAT = "kit.federated/2"


def run_fingerprints(cfg: FLConfig, fed: Federation) -> dict[str, Any]:
    """What a run's checkpoints are tied to: every setting, the data by content, the initial server model."""
    data = {"train": fingerprint_data(fed.train), "public": hash_tensors({"x": fed.public_x}),
            "test": fingerprint_data(fed.test)}
    return {"config": asdict(cfg), "data_sha256": fingerprint(data), "server_sha256": fingerprint_model(fed.server)}


def simulate(cfg: FLConfig, *, budget: str | None = None, checkpoint: str | os.PathLike | None = None,
             progress: bool = True, device: str | torch.device | None = None) -> FLHistory:
    """Run ``cfg.rounds`` rounds on ``device`` (default :func:`kit.get_device`); with ``checkpoint`` (a folder)
    save after every round and resume from it.

    Checkpoints go through :class:`kit.runs.Checkpoints` (files ``fl-<key>-NNN.pt``, the last two kept).
    """
    if not isinstance(cfg, FLConfig):
        raise TypeError(f"cfg must be a kit.federated.FLConfig; got {type(cfg).__name__}")
    # the checkpoint folder is checked before any data is loaded or round run
    store = None if checkpoint is None else Checkpoints(checkpoint, prefix=f"fl-{cfg.key()}", format=CHECKPOINT_FORMAT,
                                                        kind="federated", keep=2)
    fed = setup(cfg, budget, device)
    guard = ExpGuard(cfg.defence, eta=cfg.eta, n_clients=cfg.clients) if cfg.expguard else None
    history = FLHistory(cfg)
    prints = run_fingerprints(cfg, fed) if store is not None else {}
    state = None if store is None else store.latest(prints)
    if state is not None:
        fed.server.load_state_dict(state["server"])
        history.records = state["records"]
        if guard is not None:
            guard.load_state_dict(state["guard"])
    for r in tqdm(range(len(history.records), cfg.rounds), desc=f"{cfg.protocol} rounds", disable=not progress,
                  leave=False):
        history.records.append(_round(cfg, fed, r, guard))
        if store is not None:
            store.save(r + 1, prints, {"server": fed.server.state_dict(), "records": history.records,
                                       "guard": guard.state_dict() if guard is not None else None})
    return history
