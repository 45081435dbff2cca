"""Byzantine-robust aggregation: per public sample over clients (FedDistill), or over update vectors (FedAvg).

:func:`aggregate` combines predictions of shape (clients, samples, classes) into soft targets of shape
(samples, classes), one sample at a time, and renormalises them to probability vectors.
:func:`aggregate_vectors` runs the same code on FedAvg update vectors (clients, parameters), seen as
one sample whose "classes" are the parameters, without renormalising, and adds Krum.
:class:`ExpGuard` (the paper's FilterExp) keeps a weight per client across rounds on top of any of them.

Every defence treats the clients as a set: permuting them changes the result only by rounding.
Where a defence must pick clients, the choice never depends on client order: filter and cronus drop
exactly their stated count and settle ties at the cut by what the tied clients sent; Krum averages
candidates whose scores tie up to rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..budget import reads_are_free
from ..validate import check_choice, check_float, check_int
from .attacks import check_predictions, check_vectors

DEFENCES = ("mean", "median", "trimmed_mean", "geometric_median", "filter", "cronus")
FEDAVG_DEFENCES = (*DEFENCES, "krum")
WEIGHTED = ("mean", "geometric_median", "filter", "cronus")  # defences that accept per-client weights

DEFAULT_QUANTILE = 0.3  # filter/cronus drop the 30% of clients with the largest outlier scores, per sample


@dataclass(frozen=True)
class Aggregate:
    """Result of a defence: ``value`` (samples, classes) soft targets, ``scores`` (clients,) the per-client
    outlier score averaged over samples (zeros for ``mean``), ``kept`` (samples, clients) which clients
    entered each sample's value (all True unless the defence drops clients)."""

    value: torch.Tensor
    scores: torch.Tensor
    kept: torch.Tensor


def _check_options(trim: float, quantile: float, iterations: int) -> tuple[float, float, int]:
    return (check_float(trim, "trim", low=0.0, high=0.5, high_open=True),
            check_float(quantile, "quantile", low=0.0, high=1.0, high_open=True),
            check_int(iterations, "iterations", low=1))


def _check_weights(weights: object, name: str, clients: int, like: torch.Tensor) -> torch.Tensor | None:
    if weights is None:
        return None
    if name not in WEIGHTED:
        raise ValueError(f"weights are not supported by defence {name!r}; only by {', '.join(WEIGHTED)}")
    try:
        w = torch.as_tensor(weights, dtype=like.dtype, device=like.device)
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(f"weights must be a tensor of shape ({clients},); got {type(weights).__name__}") from error
    if tuple(w.shape) != (clients,):
        raise ValueError(f"weights must have shape ({clients},), one per client; got shape {tuple(w.shape)}")
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or float(w.sum()) <= 0:
        raise ValueError("weights must be finite, >= 0 and not all zero")
    return w


def _tie_tolerance(dtype: torch.dtype) -> float:
    # scores equal in exact arithmetic differ by rounding that depends on client order
    return math.sqrt(torch.finfo(dtype).eps)


def _weighted_mean(x: torch.Tensor, kept: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """(samples, classes) mean of x (clients, samples, classes) over the kept clients, weighted if given."""
    a = kept.to(x.dtype)
    if weights is not None:
        weighted = a * weights[None]
        # kept clients that all weigh zero: fall back to their plain mean rather than divide by zero
        a = torch.where(weighted.sum(1, keepdim=True) > 0, weighted, a)
    return torch.einsum("sn,nsk->sk", a, x) / a.sum(1)[:, None]


def _median(x: torch.Tensor) -> torch.Tensor:
    # an even count takes the mean of the two middle values, as numpy.median does
    ranked, n = x.sort(0).values, x.shape[0]
    return ranked[n // 2] if n % 2 else (ranked[n // 2 - 1] + ranked[n // 2]) / 2


def _trimmed_mean(x: torch.Tensor, trim: float) -> torch.Tensor:
    # int(trim * n) values cut from each end, the count scipy.stats.trim_mean uses
    n = x.shape[0]
    cut = int(trim * n)
    return x.sort(0).values[cut:n - cut].mean(0)


def _geometric_median(x: torch.Tensor, weights: torch.Tensor | None, iterations: int) -> torch.Tensor:
    """Weiszfeld's iteration per sample, started at the (weighted) mean."""
    w = torch.ones(x.shape[0], dtype=x.dtype, device=x.device) if weights is None else weights
    z = torch.einsum("n,nsk->sk", w, x) / w.sum()
    on_host = reads_are_free(x)
    scale = 1 + (float(x.abs().max()) if on_host else x.abs().amax())
    tol = 4 * torch.finfo(x.dtype).eps * scale
    # distances are clamped at rounding level so a median landing on a client does not divide by zero;
    # a larger guard would keep the iterate that far from a client that is the true median
    guard = torch.finfo(x.dtype).eps * scale
    settled = torch.zeros((), dtype=torch.bool, device=x.device)
    for _ in range(iterations):
        inverse = w[:, None] / (x - z).norm(dim=-1).clamp_min(guard)  # (clients, samples)
        new = torch.einsum("ns,nsk->sk", inverse, x) / inverse.sum(0)[:, None]
        if on_host:
            done = float((new - z).abs().max()) <= tol
            z = new
            if done:
                break
        else:  # every iteration runs, and z stays at the first iterate the CPU would have stopped at
            done = (new - z).abs().max() <= tol
            z = torch.where(settled, z, new)
            settled = settled | done
    return _snap_to_client(x, w, z, guard)


def _snap_to_client(x: torch.Tensor, w: torch.Tensor, z: torch.Tensor, guard: float | torch.Tensor) -> torch.Tensor:
    """Move z to its nearest client where that client is the exact geometric median.

    Weiszfeld approaches a median that sits on a client only sublinearly; Kuhn's test settles it: client j
    is a median iff the weighted sum of unit vectors from x_j to the other clients has norm at most the
    weight sitting on x_j (the only median if the norm is strictly smaller).
    """
    samples = torch.arange(x.shape[1], device=x.device)
    nearest = x[(x - z).norm(dim=-1).argmin(0), samples]  # (samples, classes)
    diff = x - nearest
    distance = diff.norm(dim=-1)  # (clients, samples)
    on_it = distance <= guard
    pull = torch.einsum("ns,nsk->sk", torch.where(on_it, 0.0, w[:, None] / distance.clamp_min(guard)), diff)
    mass = (w[:, None] * on_it).sum(0)
    # strictly inside, with a margin: at equality the median is not unique (a segment, e.g. two clients) and
    # snapping would pick an end by client order, so the order-free Weiszfeld point stays
    strict = pull.norm(dim=-1) < mass * (1 - _tie_tolerance(x.dtype))
    return torch.where(strict[:, None], nearest, z)


def _top_direction(centred: torch.Tensor) -> torch.Tensor:
    """Unit top right-singular vector (samples, classes) of each sample's centred (clients, classes) matrix.

    Exact, not iterated: the top eigenvector u of the clients' Gram matrix C C^T (clients x clients,
    small whatever the number of classes or parameters) gives v = C^T u / ||C^T u||. Power iteration
    would need thousands of steps when the top two eigenvalues lie within a percent of each other.
    """
    work = centred.double()  # the eigenvectors of nearly equal eigenvalues need the precision
    gram = torch.einsum("snk,smk->snm", work, work)
    _, vectors = torch.linalg.eigh(gram)
    v = torch.einsum("snk,sn->sk", work, vectors[..., -1])
    return (v / v.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(work.dtype).tiny)).to(centred.dtype)


def _content_key(xs: torch.Tensor) -> torch.Tensor:
    # a tie-break that depends on what a client sent, not on its position: a fixed random projection
    direction = torch.randn(xs.shape[-1], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return torch.einsum("snk,k->sn", xs.double(), direction.to(xs.device))


def _filter_pass(x: torch.Tensor, active: torch.Tensor, quantile: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One filter pass over the active clients: (kept (samples, clients), scores (samples, clients)).

    Exactly round(quantile * m) of the m active clients are dropped (at least one stays). Scores tied
    with the cut-off (exactly, as identical attackers' are, or up to rounding) are settled by what the
    clients sent, not by their position, so the result does not depend on client order.
    """
    xs = x.transpose(0, 1)  # (samples, clients, classes)
    mask = active.to(x.dtype)[..., None]
    count = active.sum(1)  # active clients per sample
    centre = (xs * mask).sum(1) / count[:, None]
    centred = (xs - centre[:, None]) * mask  # inactive rows are zero, so they do not move the direction
    direction = _top_direction(centred)
    scores = torch.einsum("snk,sk->sn", centred, direction).abs()
    dropped = torch.minimum(torch.round(quantile * count.to(torch.float64)).long(), count - 1)
    keep = count - dropped
    ranked = scores.masked_fill(~active, math.inf).sort(1).values
    cut = ranked.gather(1, (keep - 1)[:, None])  # the highest score that stays, in exact order
    slack = _tie_tolerance(x.dtype) * scores.amax(1, keepdim=True)
    below, tied = active & (scores < cut - slack), active & ((scores - cut).abs() <= slack)
    # kept first: the clearly lower scores, then the tied ones in content order, exactly `keep` of them
    order = torch.where(below, -math.inf, torch.where(tied, _content_key(xs), math.inf))
    rank = order.argsort(dim=1, stable=True).argsort(dim=1, stable=True)
    return active & (rank < keep[:, None]), scores


def _krum(x: torch.Tensor, n_byzantine: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Krum on x (clients, 1, parameters): (value (1, parameters), scores (clients,), kept (1, clients))."""
    v = x[:, 0]
    n = v.shape[0]
    # one row at a time: memory O(n * parameters) rather than O(n^2 * parameters)
    distances = torch.stack([((v - v[i]) ** 2).sum(1) for i in range(n)])
    distances.fill_diagonal_(math.inf)
    scores = distances.sort(1).values[:, :n - n_byzantine - 2].sum(1)
    best = scores.min()
    kept = scores <= best + _tie_tolerance(x.dtype) * best.abs()  # near-ties are averaged, not picked by index
    return v[kept].mean(0, keepdim=True), scores, kept[None]


def _combine(name: str, x: torch.Tensor, trim: float, quantile: float, iterations: int,
             weights: torch.Tensor | None, n_byzantine: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """(value, scores per client or None, kept) of defence ``name`` on x (clients, samples, classes)."""
    clients, samples, _ = x.shape
    everyone = torch.ones(samples, clients, dtype=torch.bool, device=x.device)
    if name == "mean":
        return _weighted_mean(x, everyone, weights), torch.zeros(clients, dtype=x.dtype, device=x.device), everyone
    if name == "median":
        return _median(x), None, everyone
    if name == "trimmed_mean":
        return _trimmed_mean(x, trim), None, everyone
    if name == "geometric_median":
        return _geometric_median(x, weights, iterations), None, everyone
    if name == "krum":
        return _krum(x, n_byzantine)
    kept, scores = _filter_pass(x, everyone, quantile)
    if name == "cronus":  # the filter again on the survivors; the scores stay those of the first pass
        kept, _ = _filter_pass(x, kept, quantile)
    return _weighted_mean(x, kept, weights), scores.mean(0), kept


def renormalise(value: torch.Tensor) -> torch.Tensor:
    """Rows of ``value`` clipped at 0 and scaled to sum to one; an all-zero row becomes uniform."""
    value = value.clamp_min(0)
    total = value.sum(-1, keepdim=True)
    uniform = torch.full_like(value, 1.0 / value.shape[-1])
    return torch.where(total > 0, value / total.clamp_min(torch.finfo(value.dtype).tiny), uniform)


def aggregate(name: str, predictions: torch.Tensor, *, trim: float = 0.2, quantile: float = DEFAULT_QUANTILE,
              iterations: int = 100, weights: torch.Tensor | None = None, validate: bool = True) -> Aggregate:
    """Aggregate client predictions (clients, samples, classes) per sample with defence ``name``.

    ``name`` is one of :data:`DEFENCES`:

    * ``mean``: the (``weights``-weighted) mean;
    * ``median``: coordinate-wise median over clients, the mean of the two middle values for an even count;
    * ``trimmed_mean``: per coordinate, drop int(trim * clients) values from each end, average the rest;
    * ``geometric_median``: the point minimising the summed Euclidean distances, by ``iterations``
      Weiszfeld steps (fewer once it stops moving; ``iterations`` is used by this defence only);
    * ``filter``: per sample, centre the clients' predictions, find their top principal direction
      (exactly, from the clients' Gram matrix), score each client by the absolute projection of its
      centred prediction, drop exactly the round(quantile * clients) highest scores (at least one
      client stays; ties at the cut settled by the clients' predictions, not their order) and average
      the rest;
    * ``cronus``: the filter applied twice, the second time to the first pass' survivors.

    The value is renormalised to probability vectors (a row that is all zero becomes uniform).
    ``scores`` holds, per client and averaged over samples, its absolute projection (filter; cronus:
    the first pass) or its L1 distance to the value (median, trimmed mean, geometric median); zeros
    for the mean. ``weights`` (clients,) weight the mean, the geometric median and the average of the
    clients a filter keeps; the other defences reject them. ``validate=False`` skips the check that the
    predictions hold probability vectors (for predictions the kit made itself: on an accelerator, reading
    values waits for the device).
    """
    name = check_choice(name, "defence", DEFENCES)
    predictions = check_predictions(predictions, values=validate)
    trim, quantile, iterations = _check_options(trim, quantile, iterations)
    weights = _check_weights(weights, name, predictions.shape[0], predictions)
    value, scores, kept = _combine(name, predictions, trim, quantile, iterations, weights, 0)
    value = renormalise(value)
    if scores is None:
        scores = (predictions - value).abs().sum(-1).mean(1)
    return Aggregate(value, scores, kept)


def aggregate_vectors(name: str, vectors: torch.Tensor, *, trim: float = 0.2, quantile: float = DEFAULT_QUANTILE,
                      iterations: int = 100, weights: torch.Tensor | None = None, n_byzantine: int = 0) -> torch.Tensor:
    """Aggregate FedAvg update vectors (clients, parameters) into one (parameters,) with defence ``name``.

    ``name`` is one of :data:`FEDAVG_DEFENCES`: those of :func:`aggregate`, run on the vectors as one
    sample without renormalising, and ``krum``: each vector's score is the sum of squared distances to
    its clients - n_byzantine - 2 nearest other vectors, the lowest score wins (near-ties averaged).
    ``n_byzantine`` is the number of attackers Krum assumes; it needs clients >= n_byzantine + 3.
    """
    name = check_choice(name, "defence", FEDAVG_DEFENCES)
    vectors = check_vectors(vectors)
    trim, quantile, iterations = _check_options(trim, quantile, iterations)
    clients = vectors.shape[0]
    n_byzantine = check_int(n_byzantine, "n_byzantine", low=0)
    if name == "krum":
        if clients < 3:
            raise ValueError(f"krum needs at least 3 clients (vectors); got {clients}")
        n_byzantine = check_int(n_byzantine, "n_byzantine", low=0, high=clients - 3)
    weights = _check_weights(weights, name, clients, vectors)
    value, _, _ = _combine(name, vectors[:, None], trim, quantile, iterations, weights, n_byzantine)
    return value[0]


class ExpGuard:
    """Exponential client weights across rounds on top of a base defence (the paper's FilterExp).

    Each call aggregates the round's predictions with the base defence, scores every client by
    s_i = mean over samples of the L1 distance between its prediction and that aggregate (L1: for
    probability vectors it is twice the total-variation distance, so s_i lies in [0, 2] and ``eta`` has
    the same meaning on every dataset), updates w_i <- w_i * exp(-eta * s_i), renormalises the weights to
    sum to one and returns the weighted mean of the client predictions. Weights start uniform and are
    kept in log space (float64), so an attacker's weight can shrink for many rounds without
    underflowing to an all-zero vector. ``history`` holds the weights after every round.
    """

    def __init__(self, base: str = "filter", *, eta: float = 1.0, trim: float = 0.2,
                 quantile: float = DEFAULT_QUANTILE, iterations: int = 100, n_clients: int | None = None) -> None:
        self.base = check_choice(base, "base", DEFENCES)
        self.eta = check_float(eta, "eta", low=0.0, low_open=True)
        self.trim, self.quantile, self.iterations = _check_options(trim, quantile, iterations)
        self.n_clients = None if n_clients is None else check_int(n_clients, "n_clients", low=1)
        self._log_weights: torch.Tensor | None = None
        self.history: list[torch.Tensor] = []

    @property
    def weights(self) -> torch.Tensor | None:
        """Current weights (clients,), float64 summing to one; None before the client count is known."""
        if self._log_weights is not None:
            return torch.softmax(self._log_weights, 0)
        if self.n_clients is not None:
            return torch.full((self.n_clients,), 1.0 / self.n_clients, dtype=torch.float64)
        return None

    def _check_clients(self, clients: int, name: str) -> None:
        if self.n_clients is not None and clients != self.n_clients:
            raise ValueError(f"{name} has {clients} clients but this ExpGuard tracks {self.n_clients}; "
                             f"client weights cannot follow a changed client count (use a new ExpGuard)")

    def __call__(self, predictions: torch.Tensor, validate: bool = True) -> Aggregate:
        """One round: base aggregate, score, update the weights, return the weighted mean (scores = s)."""
        predictions = check_predictions(predictions, values=validate)
        clients = predictions.shape[0]
        self._check_clients(clients, "predictions")
        base = aggregate(self.base, predictions, trim=self.trim, quantile=self.quantile, iterations=self.iterations,
                         validate=validate)
        scores = (predictions - base.value).abs().sum(-1).mean(1)
        if self._log_weights is None:
            self.n_clients = clients
            self._log_weights = torch.zeros(clients, dtype=torch.float64, device=predictions.device)
        # the weights live with the predictions, so a round on an accelerator never waits for the host
        log_weights = (self._log_weights.to(predictions.device, non_blocking=True)
                       - self.eta * scores.detach().double())
        self._log_weights = log_weights - torch.logsumexp(log_weights, 0)
        weights = self.weights
        self.history.append(weights.clone())
        value = renormalise(torch.einsum("n,nsk->sk", weights.to(predictions), predictions))
        everyone = torch.ones(predictions.shape[1], clients, dtype=torch.bool, device=predictions.device)
        return Aggregate(value, scores, everyone)

    def state_dict(self) -> dict[str, object]:
        """Everything needed to resume: settings (checked on load), log-weights and the weight history."""
        return {"base": self.base, "eta": self.eta, "n_clients": self.n_clients,
                "log_weights": None if self._log_weights is None else self._log_weights.cpu().clone(),
                "history": [w.cpu().clone() for w in self.history]}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Resume from :meth:`state_dict`; the base defence and eta must match this guard's."""
        missing = {"base", "eta", "n_clients", "log_weights", "history"} - set(state)
        if missing:
            raise ValueError(f"state is missing {', '.join(sorted(missing))}; pass ExpGuard.state_dict() output")
        for key in ("base", "eta"):
            if state[key] != getattr(self, key):
                raise ValueError(f"state has {key} {state[key]!r} but this ExpGuard has {getattr(self, key)!r}")
        n_clients, log_weights = state["n_clients"], state["log_weights"]
        if log_weights is not None and (n_clients is None or tuple(log_weights.shape) != (n_clients,)):
            raise ValueError(f"state log_weights must have shape (n_clients,) = ({n_clients},)")
        if self.n_clients is not None and n_clients is not None:
            self._check_clients(n_clients, "state")
        self.n_clients = n_clients if n_clients is not None else self.n_clients
        self._log_weights = None if log_weights is None else log_weights.detach().double().cpu().clone()
        self.history = [w.clone() for w in state["history"]]
