"""Byzantine attacks: what the attackers send instead of honest predictions (FedDistill) or updates (FedAvg).

Prediction attacks take the honest clients' softmax outputs on the public set, a float tensor of shape
(clients, samples, classes) holding probability vectors, and return what ``n_byzantine`` attackers send,
shape (n_byzantine, samples, classes), again probability vectors. The attackers are omniscient: they see
every honest prediction of the round, the strongest threat model of the paper. All of them send the same
crafted vectors, except for ``random`` and ``none``, which draw per attacker.

Vector attacks (:func:`attack_weights`) act on FedAvg *update* vectors, the difference between a
client's trained weights and the global model, flattened, shape (clients, parameters).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..validate import check_choice, check_float, check_int

ATTACKS = ("none", "random", "constant", "second", "lma", "cpa", "hiding_lma", "hiding_cpa")
FEDAVG_ATTACKS = ("none", "gaussian", "gaussian_weights", "scaled", "sign_flip")

PROBABILITY_ATOL = 1e-3  # a softmax in float16/bfloat16 sums to one only up to about this


def check_predictions(predictions: object, name: str = "predictions", *, min_classes: int = 1,
                      values: bool = True) -> torch.Tensor:
    """Return ``predictions`` if it is a float (clients, samples, classes) tensor of probability vectors, else raise.

    ``values=False`` checks type and shape only: for predictions the kit computed itself, whose values
    need no check (reading them would make an accelerator wait)."""
    if not isinstance(predictions, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (clients, samples, classes); "
                        f"got {type(predictions).__name__}")
    if not predictions.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got dtype {predictions.dtype}")
    if predictions.dim() != 3:
        raise ValueError(f"{name} must have shape (clients, samples, classes), 3 dimensions; "
                         f"got shape {tuple(predictions.shape)}")
    clients, samples, classes = predictions.shape
    if clients < 1 or samples < 1 or classes < min_classes:
        raise ValueError(f"{name} needs at least 1 client, 1 sample and {min_classes} classes; "
                         f"got shape {tuple(predictions.shape)}")
    if not values:
        return predictions
    if not bool(torch.isfinite(predictions).all()) or bool((predictions < 0).any()):
        raise ValueError(f"{name} must hold probability vectors: finite entries >= 0")
    sums = predictions.sum(-1)
    if bool(((sums - 1).abs() > PROBABILITY_ATOL).any()):
        worst = float((sums - 1).abs().max())
        raise ValueError(f"{name} must hold probability vectors: every row along the last (class) dimension "
                         f"sums to 1 (within {PROBABILITY_ATOL}); the worst row is off by {worst:.3g}")
    return predictions


def check_vectors(vectors: object, name: str = "vectors") -> torch.Tensor:
    """Return ``vectors`` if it is a finite float (clients, parameters) tensor with at least one of each, else raise."""
    if not isinstance(vectors, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (clients, parameters); got {type(vectors).__name__}")
    if not vectors.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got dtype {vectors.dtype}")
    if vectors.dim() != 2 or vectors.shape[0] < 1 or vectors.shape[1] < 1:
        raise ValueError(f"{name} must have shape (clients, parameters) with at least 1 of each; "
                         f"got shape {tuple(vectors.shape)}")
    if not bool(torch.isfinite(vectors).all()):
        raise ValueError(f"{name} must be finite")
    return vectors


def _check_generator(generator: object) -> torch.Generator | None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None; got {type(generator).__name__}")
    return generator


def _check_similarity(similarity: object, classes: int) -> torch.Tensor:
    if not isinstance(similarity, torch.Tensor):
        raise TypeError(f"similarity must be a torch.Tensor of shape ({classes}, {classes}); "
                        f"got {type(similarity).__name__}")
    # the reference code once loaded another dataset's matrix: a shape check catches that early
    if tuple(similarity.shape) != (classes, classes):
        raise ValueError(f"similarity must have shape ({classes}, {classes}), one row and column per class of the "
                         f"predictions; got shape {tuple(similarity.shape)}")
    if not bool(torch.isfinite(similarity).all()):
        raise ValueError("similarity must be finite")
    return similarity


def class_similarity(predictions: torch.Tensor) -> torch.Tensor:
    """Class-similarity matrix (classes, classes) estimated from predictions on the public set.

    Each sample gets the label a = argmax of its mean prediction over clients. Row a of S is the mean,
    over the samples labelled a, of their mean prediction, so S[a, b] is how much probability the
    clients put on class b when they believe a (a row is the one-hot e_a when no sample is labelled a).
    The result is symmetrised, (S + S^T) / 2, so S[a, b] says how easily a and b are confused in
    either direction. CPA sends, for a sample of top class t, the class least similar to t.
    """
    predictions = check_predictions(predictions)
    mean = predictions.mean(0)
    classes = mean.shape[1]
    labels = mean.argmax(-1)
    onehot = F.one_hot(labels, classes).to(mean.dtype)  # (samples, classes)
    counts = onehot.sum(0)  # samples per label
    sums = onehot.T @ mean  # row a: summed mean predictions of the samples labelled a
    eye = torch.eye(classes, dtype=mean.dtype, device=mean.device)
    rows = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], eye)
    return (rows + rows.T) / 2


def _one_hot(classes_per_sample: torch.Tensor, n_byzantine: int, like: torch.Tensor) -> torch.Tensor:
    """One-hot vectors (n_byzantine, samples, classes) from class indices (samples,) or (n_byzantine, samples)."""
    hot = F.one_hot(classes_per_sample.to(like.device, non_blocking=True), like.shape[-1]).to(like.dtype)
    return hot.expand(n_byzantine, *like.shape[-2:]).clone()


def _randint(high: int, size: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.randint(high, size, generator=generator, device=device)


def _cpa_target(mean: torch.Tensor, similarity: torch.Tensor) -> torch.Tensor:
    # the class least similar to each sample's honest top class
    top = mean.argmax(-1)
    return similarity.to(mean)[:, top].argmin(0)


def _honest_copies(honest: torch.Tensor, client: torch.Tensor, n_byzantine: int) -> torch.Tensor:
    """Per sample s, the honest vector honest[client[s], s], for every attacker."""
    picked = honest[client, torch.arange(honest.shape[1], device=honest.device)]
    return picked.expand(n_byzantine, *picked.shape).clone()


def attack(name: str, honest: torch.Tensor, n_byzantine: int, *, generator: torch.Generator | None = None,
           similarity: torch.Tensor | None = None, constant_class: int = 0, fraction: float = 1.0,
           validate: bool = True) -> torch.Tensor:
    """Predictions (n_byzantine, samples, classes) that ``n_byzantine`` attackers send, given the honest ones.

    ``name`` is one of :data:`ATTACKS`:

    * ``none``: the attackers behave honestly; each sends all predictions of one honest client chosen
      uniformly at random (so a run "with attackers" but no attack has the same number of voices);
    * ``random``: one-hot on a uniformly random class, per sample and attacker;
    * ``constant``: one-hot on ``constant_class``;
    * ``second``: one-hot on the second most likely class of the honest mean;
    * ``lma`` (loss maximisation): one-hot on the least likely class of the honest mean;
    * ``cpa`` (class prior): one-hot on argmin_j S[j, t], t the honest mean's top class and S
      ``similarity`` (default :func:`class_similarity` of the honest predictions);
    * ``hiding_lma``: per sample, the honest client's own vector with the lowest probability on the
      honest mean's top class (the most harmful vector that is also a real one);
    * ``hiding_cpa``: per sample, the honest vector with the highest probability on the CPA target class.

    Only ``round(fraction * samples)`` samples (chosen with ``generator``, the same for every attacker)
    are attacked; on the others the attackers send the honest mean. ``generator=None`` draws from
    torch's global generator. Ties (argmin, argmax) go to the lowest index.
    """
    name = check_choice(name, "attack", ATTACKS)
    honest = check_predictions(honest, "honest", min_classes=2, values=validate)
    n_byzantine = check_int(n_byzantine, "n_byzantine", low=0)
    clients, samples, classes = honest.shape
    constant_class = check_int(constant_class, "constant_class", low=0, high=classes - 1)
    fraction = check_float(fraction, "fraction", low=0.0, high=1.0, low_open=True)
    generator = _check_generator(generator)
    if similarity is not None:
        similarity = _check_similarity(similarity, classes)

    mean = honest.mean(0)
    if n_byzantine == 0:
        return honest.new_zeros((0, samples, classes))
    if name == "none":
        crafted = honest[_randint(clients, (n_byzantine,), generator).to(honest.device, non_blocking=True)].clone()
    elif name == "random":
        crafted = _one_hot(_randint(classes, (n_byzantine, samples), generator), n_byzantine, honest)
    elif name == "constant":
        crafted = _one_hot(torch.full((samples,), constant_class), n_byzantine, honest)
    elif name == "second":
        ranked = torch.argsort(mean, dim=-1, descending=True, stable=True)  # ties: lower class first, unlike topk
        crafted = _one_hot(ranked[:, 1], n_byzantine, honest)
    elif name == "lma":
        crafted = _one_hot(mean.argmin(-1), n_byzantine, honest)
    elif name == "hiding_lma":
        top = mean.argmax(-1)
        on_top = honest.gather(2, top.expand(clients, samples)[..., None])[..., 0]  # (clients, samples)
        crafted = _honest_copies(honest, on_top.argmin(0), n_byzantine)
    else:  # cpa, hiding_cpa
        target = _cpa_target(mean, class_similarity(honest) if similarity is None else similarity)
        if name == "cpa":
            crafted = _one_hot(target, n_byzantine, honest)
        else:
            on_target = honest.gather(2, target.expand(clients, samples)[..., None])[..., 0]
            crafted = _honest_copies(honest, on_target.argmax(0), n_byzantine)

    if fraction < 1.0:
        device = generator.device if generator is not None else torch.device("cpu")
        chosen = torch.randperm(samples, generator=generator, device=device)[:round(fraction * samples)]
        attacked = torch.zeros(samples, dtype=torch.bool, device=honest.device)
        attacked[chosen.to(honest.device, non_blocking=True)] = True
        crafted = torch.where(attacked[None, :, None], crafted, mean.expand_as(crafted))
    return crafted


def attack_weights(name: str, honest_vectors: torch.Tensor, n_byzantine: int, *,
                   generator: torch.Generator | None = None, sigma: float = 1.0, scale: float = -10.0,
                   global_vector: torch.Tensor | None = None) -> torch.Tensor:
    """Update vectors (n_byzantine, parameters) that FedAvg attackers send, given the honest updates.

    The vectors are updates (a client's trained weights minus the global model, flattened), so the
    server adds their aggregate to the global model. ``name`` is one of :data:`FEDAVG_ATTACKS`:
    ``none`` (copies of randomly chosen honest updates), ``gaussian`` (N(0, sigma^2) entries),
    ``gaussian_weights`` (the attacker's *weights* are N(0, sigma^2), as in the reference code: the update is
    that minus ``global_vector``, the current global model, which it needs), ``scaled`` (``scale`` times the
    honest mean update) and ``sign_flip`` (minus the honest mean update).
    """
    name = check_choice(name, "attack", FEDAVG_ATTACKS)
    honest_vectors = check_vectors(honest_vectors, "honest_vectors")
    n_byzantine = check_int(n_byzantine, "n_byzantine", low=0)
    sigma = check_float(sigma, "sigma", low=0.0)
    scale = check_float(scale, "scale")
    generator = _check_generator(generator)
    if name == "gaussian_weights" and (not isinstance(global_vector, torch.Tensor)
                                       or global_vector.shape != honest_vectors.shape[1:]):
        raise ValueError(f"attack 'gaussian_weights' needs global_vector=, the global model's flat parameters of "
                             f"shape {tuple(honest_vectors.shape[1:])}; got "
                             f"{None if global_vector is None else tuple(global_vector.shape)}")

    clients, dim = honest_vectors.shape
    mean = honest_vectors.mean(0)
    if name == "none":
        picked = _randint(clients, (n_byzantine,), generator).to(honest_vectors.device, non_blocking=True)
        return honest_vectors[picked].clone()
    if name in ("gaussian", "gaussian_weights"):
        device = generator.device if generator is not None else torch.device("cpu")
        noise = torch.randn((n_byzantine, dim), generator=generator, device=device, dtype=honest_vectors.dtype)
        noise = (sigma * noise).to(honest_vectors.device, non_blocking=True)
        return noise if name == "gaussian" else noise - global_vector
    # a new tensor scaled by `scale`: the reference's in-place-on-a-copy scaling changed nothing
    factor = scale if name == "scaled" else -1.0
    return (factor * mean).expand(n_byzantine, dim).clone()
