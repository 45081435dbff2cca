"""Sparse Model Soups (SMS): average retrained copies of one pruned model, then prune the average further.

A phase (:func:`soup_phase`) of :func:`sparse_model_soup` prunes the previous soup (phase 1: the
dense model) to the cumulative sparsity 1 - (1 - s)^(i/P), exactly as :func:`kit.pruning.imp` does,
retrains ``ingredients`` copies that differ in one setting, merges them (:mod:`kit.soups.merging`:
uniform or greedy soup), recomputes BatchNorm statistics and goes on from the soup. The copies share
the mask by construction, so the soup is exactly as sparse as each.

Decisions (the notebook and the tests rely on them):

* ``retrain_epochs`` means what it means for ``imp``: each ingredient's retraining budget over all
  phases, split per phase by :func:`kit.pruning.phases.phase_epochs`. A soup of m ingredients
  therefore costs m times the retraining of one IMP run with the same ``retrain_epochs`` (compare
  with ``imp(retrain_epochs=m * E)`` for equal compute).
* What varies (``vary``), ingredient j of m, with u_j = -1 + 2j/(m-1) spread evenly over [-1, 1]
  (u = 0 when m = 1), unless ``values`` gives one value per ingredient:
  ``seed``: the batch order (fit seed) differs, ingredient 0 keeping IMP's phase seed;
  ``weight_decay``: weight_decay * 2**u_j (from half to twice the base; values = absolute decays);
  ``lr``: the retraining schedule times 2**u_j (values = these factors);
  ``retrain_length``: the phase's retraining steps times 1 + u_j / 2, rounded, at least one step
  (from half to 1.5 times; values = these factors), so the mean length is the base length;
  ``mixed``: the diverse ingredients of the paper's mechanism, everything at once: its own batch order
  (as ``seed``), weight_decay * 2**u_j (as ``weight_decay``) and random shifts of the images by up to
  0, 1 or 2 pixels (:data:`MIXED_SHIFTS`, :class:`kit.data.RandomShift`); values = the indices j.
  Except for ``seed`` and ``mixed``, all ingredients see the same batch order (IMP's phase seed).
* With one ingredient the run is IMP itself (same pruning, seed and schedule, and no merge or
  recalibration), bit for bit.
* BatchNorm statistics are recomputed whenever a soup averages two or more ingredients (a soup of
  one is that ingredient, with its own statistics), on ``recalibrate_batches`` seeded batches of the
  training split (all of it by default). With ``recalibrate_ingredients=True`` every ingredient
  gets the same treatment before it is scored or merged. Off by default (the paper's recipe, and one
  ingredient stays IMP), but after short retraining BatchNorm running statistics lag behind the
  weights, so a recalibrated soup against unrecalibrated ingredients credits averaging with what
  recalibration alone does: switch it on (and recalibrate IMP's model too) for a fair comparison.
* ``workers > 1`` trains the ingredients of a phase in that many spawned processes
  (:mod:`kit.soups.workers`); the results equal the sequential ones whenever the sequential run also
  uses one intra-op thread.
* Checkpoints go through :class:`kit.runs.Checkpoints` with IMP's format and file names
  (``imp-phase-NNN.pt``); a checkpoint of other arguments raises, one of another ``workers`` value resumes.
* :func:`soup_gmp` applies soups to GMP (pruning during training): one GMP run prunes to the target,
  then the ingredients retrain copies of its result under GMP's final mask and are merged, so the
  masks are identical by construction (m GMP runs would each pick their own mask).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..data import Splits
from ..pruning import (
    CHECKPOINT_FORMAT,
    copy_model,
    gmp,
    load_pruned_state_dict,
    phase_epochs,
    phase_seed,
    phase_sparsity,
    prune_step,
    retrain_schedule,
    sparsity_report,
)
from ..pruning.phases import (
    CHECKPOINT_PREFIX,
    accuracy,
    check_pruning_arguments,
    check_retrain_schedule,
    check_train_schedule,
    run_fingerprints,
)
from ..runs import Checkpoints, derive_seed
from ..schedules import Constant, Schedule, steps_per_epoch
from ..validate import check_choice, check_float, check_int
from .merging import greedy_soup, has_batchnorm, recalibrate_batchnorm, uniform_soup
from .metrics import accuracy_from_probs, expected_calibration_error, pairwise_distances, softmax_outputs
from .results import IngredientResult, SoupPhase, SoupResult
from .workers import IngredientTask, IngredientTrainer

VARY = ("seed", "weight_decay", "retrain_length", "lr", "mixed")
MIXED_SHIFTS = (0, 1, 2)  # vary='mixed': ingredient j shifts its images by up to MIXED_SHIFTS[j % 3] pixels
MERGE = ("uniform", "greedy")


def _spread(m: int) -> list[float]:
    return [0.0] if m == 1 else [-1.0 + 2.0 * j / (m - 1) for j in range(m)]


def ingredient_values(vary: str, ingredients: int, *, weight_decay: float = 0.0) -> list[float]:
    """The default value of the varied setting for each ingredient (see the module docstring for the grid)."""
    vary = check_choice(vary, "vary", VARY)
    ingredients = check_int(ingredients, "ingredients", low=1)
    weight_decay = check_float(weight_decay, "weight_decay", low=0.0)
    u = _spread(ingredients)
    if vary in ("seed", "mixed"):
        if vary == "mixed" and weight_decay == 0.0 and ingredients > 1:
            raise ValueError("vary='mixed' spreads the ingredients' weight decay around weight_decay, which is 0; "
                             "pass weight_decay > 0")
        return [float(j) for j in range(ingredients)]
    if vary == "weight_decay":
        if weight_decay == 0.0 and ingredients > 1:
            raise ValueError("vary='weight_decay' spreads the ingredients around weight_decay, which is 0; "
                             "pass weight_decay > 0 or values= (one weight decay per ingredient)")
        return [weight_decay * 2.0 ** x for x in u]
    if vary == "lr":
        return [2.0 ** x for x in u]
    return [1.0 + x / 2.0 for x in u]


def ingredient_seed(seed: int, phase: int, index: int) -> int:
    """The batch-order seed of ingredient ``index`` in ``phase``: ingredient 0 keeps IMP's phase seed, so one
    ingredient reproduces IMP; the others get seeds of their own, derived from (seed, phase, index)."""
    return phase_seed(seed, phase) if index == 0 else derive_seed(seed, phase, index)


@dataclass
class SoupPlan:
    """What an SMS run does in every phase: ingredients, what varies, how they merge, and the shared settings."""

    ingredients: int
    vary: str
    values: list[float]
    merge: str
    schedule: str
    criterion: str
    momentum: float
    weight_decay: float
    batch_size: int
    seed: int
    recalibrate_batches: int | None
    recalibrate_ingredients: bool
    workers: int


def check_plan(args: dict[str, Any], ingredients: int, vary: str, merge: str, values: Sequence[float] | None,
                schedule: str, recalibrate_batches: int | None, recalibrate_ingredients: bool,
                workers: int) -> SoupPlan:
    """Check the soup's own arguments (``args``: from :func:`kit.pruning.phases.check_pruning_arguments`)."""
    ingredients = check_int(ingredients, "ingredients", low=1)
    vary = check_choice(vary, "vary", VARY)
    merge = check_choice(merge, "merge", MERGE)
    schedule = check_retrain_schedule(schedule)
    if recalibrate_batches is not None:
        recalibrate_batches = check_int(recalibrate_batches, "recalibrate_batches", low=1)
    workers = check_int(workers, "workers", low=1)
    if not isinstance(recalibrate_ingredients, bool):
        raise TypeError(f"recalibrate_ingredients must be True or False; got {type(recalibrate_ingredients).__name__}")
    if values is None:
        values = ingredient_values(vary, ingredients, weight_decay=args["weight_decay"])
    else:
        if vary in ("seed", "mixed"):
            raise ValueError(f"values= does not apply to vary={vary!r} (the seeds derive from seed, phase and "
                             f"ingredient)")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise TypeError(f"values must be a sequence of numbers, one per ingredient; got {type(values).__name__}")
        if len(values) != ingredients:
            raise ValueError(f"values must hold one value per ingredient ({ingredients}); got {len(values)}")
        if vary == "weight_decay":
            values = [check_float(v, f"values[{j}]", low=0.0) for j, v in enumerate(values)]
        else:
            values = [check_float(v, f"values[{j}]", low=0.0, low_open=True) for j, v in enumerate(values)]
    return SoupPlan(ingredients=ingredients, vary=vary, values=list(values), merge=merge, schedule=schedule,
                 criterion=args["criterion"], momentum=args["momentum"], weight_decay=args["weight_decay"],
                 batch_size=args["batch_size"], seed=args["seed"], recalibrate_batches=recalibrate_batches,
                 recalibrate_ingredients=recalibrate_ingredients, workers=workers)


def _tasks(plan: SoupPlan, phase: int, base_steps: int, spe: int, train_schedule: Schedule, train_steps: int,
           distance: float, fraction: float, desc: str) -> list[IngredientTask]:
    tasks = []
    for j, value in enumerate(plan.values):
        steps = max(1, round(value * base_steps)) if plan.vary == "retrain_length" else base_steps
        lr_schedule = retrain_schedule(plan.schedule, retrain_steps=steps, train_schedule=train_schedule,
                                       train_steps=train_steps, distance=distance,
                                       # nothing pruned (rounding) means d = 0: any p > 0 gives ALLR its floor
                                       pruned_fraction=fraction if fraction > 0 else 1.0)
        factor = value if plan.vary == "lr" else 1.0
        mixed = plan.vary == "mixed"
        weight_decay = value if plan.vary == "weight_decay" else plan.weight_decay
        if mixed:
            weight_decay = plan.weight_decay * 2.0 ** _spread(len(plan.values))[j]
        tasks.append(IngredientTask(index=j, value=float(value),
                                    seed=ingredient_seed(plan.seed, phase, j if plan.vary in ("seed", "mixed") else 0),
                                    steps=steps, epochs=math.ceil(steps / spe),
                                    lrs=tuple(factor * float(lr_schedule(t)) for t in range(steps)),
                                    weight_decay=weight_decay, momentum=plan.momentum, batch_size=plan.batch_size,
                                    desc=f"{desc}, ingredient {j + 1}/{len(plan.values)}",
                                    shift=MIXED_SHIFTS[j % len(MIXED_SHIFTS)] if mixed else 0))
    return tasks


def soup_phase(work: nn.Module, data: Splits, plan: SoupPlan, trainer: IngredientTrainer, *, phase: int,
               target: float, epochs: int, train_schedule: Schedule, train_steps: int,
               device: str | torch.device | None = None, desc: str = "SMS") -> tuple[nn.Module, SoupPhase]:
    """One SMS phase: prune ``work`` (in place) to ``target``, retrain the ingredients, merge them; the soup and
    the phase's record."""
    started = time.perf_counter()
    # 1. prune, exactly as an IMP phase does
    fraction, distance = prune_step(work, plan.criterion, target, phase_seed(plan.seed, phase))
    accuracy_pruned = accuracy(work, data.test, device)
    # 2. retrain copies of the pruned model that differ in one setting (same mask: a copy keeps it)
    spe = steps_per_epoch(len(data.train), plan.batch_size)
    tasks = _tasks(plan, phase, epochs * spe, spe, train_schedule, train_steps, distance, fraction, desc)
    trained = trainer.run(work, tasks)
    models = [m for m, _ in trained]
    recalibrate = data.train if has_batchnorm(work) else None
    recal_seed = phase_seed(plan.seed, phase)
    if recalibrate is not None and plan.recalibrate_ingredients:
        for model in models:
            recalibrate_batchnorm(model, recalibrate, batches=plan.recalibrate_batches, batch_size=plan.batch_size,
                                  seed=recal_seed, device=device)
    # 3. merge: the greedy soup by validation accuracy, or the uniform soup (BatchNorm statistics recomputed)
    if plan.merge == "greedy":
        soup, selected = greedy_soup(models, data.val, recalibrate_data=recalibrate,
                                     recalibrate_batches=plan.recalibrate_batches, batch_size=plan.batch_size,
                                     seed=recal_seed, device=device, return_selected=True)
    else:
        selected = list(range(len(models)))
        soup = uniform_soup(models) if len(models) > 1 else copy_model(models[0])
        if recalibrate is not None and len(models) > 1:
            recalibrate_batchnorm(soup, recalibrate, batches=plan.recalibrate_batches, batch_size=plan.batch_size,
                                  seed=recal_seed, device=device)
    record = _phase_record(data, tasks, trained, soup, selected, spe, device, phase=phase, target_sparsity=target,
                           pruned_fraction=fraction, distance=distance, accuracy_pruned=accuracy_pruned, epochs=epochs,
                           recalibrated=recalibrate is not None and len(selected) > 1)
    record.seconds = time.perf_counter() - started
    return soup, record


def _phase_record(data: Splits, tasks: list[IngredientTask], trained: list, soup: nn.Module, selected: list[int],
                  spe: int, device: str | torch.device | None, **phase: Any) -> SoupPhase:
    # the numbers of a phase: every ingredient's, the soup's, the best ingredient's and the output ensemble's
    models = [m for m, _ in trained]
    test = [softmax_outputs(m, data.test, device) for m in models]
    targets = test[0][1]
    ingredients = []
    for task, (model, history), (probs, _) in zip(tasks, trained, test, strict=True):
        report = sparsity_report(model)
        ingredients.append(IngredientResult(
            index=task.index, value=task.value, seed=task.seed, weight_decay=task.weight_decay,
            lr_peak=max(task.lrs), steps=task.steps, epochs=task.steps / spe,
            accuracy=accuracy_from_probs(probs, targets), val_accuracy=accuracy(model, data.val, device),
            ece=expected_calibration_error(probs, targets), sparsity=report.sparsity, zeros=report.zeros,
            history=history))
    soup_probs, _ = softmax_outputs(soup, data.test, device)
    ensemble = sum(p for p, _ in test) / len(test)
    best = max(range(len(models)), key=lambda k: (ingredients[k].val_accuracy, -k))
    distances, angles = pairwise_distances(models)
    report = sparsity_report(soup)
    return SoupPhase(
        **phase, sparsity=report.sparsity, zeros=report.zeros, total=report.total,
        accuracy=accuracy_from_probs(soup_probs, targets), val_accuracy=accuracy(soup, data.val, device),
        ece=expected_calibration_error(soup_probs, targets), ensemble_accuracy=accuracy_from_probs(ensemble, targets),
        ensemble_ece=expected_calibration_error(ensemble, targets), best_ingredient=best,
        best_accuracy=ingredients[best].accuracy, best_ece=ingredients[best].ece, selected=selected,
        ingredients=ingredients, distances=distances.tolist(), angles=angles.tolist())


def _store(checkpoint_dir: str | os.PathLike | None) -> Checkpoints | None:
    # SMS phases are IMP phases that end in a merge: same file names and format as IMP's
    if checkpoint_dir is None:
        return None
    return Checkpoints(checkpoint_dir, prefix=CHECKPOINT_PREFIX, format=CHECKPOINT_FORMAT, kind="IMP")


def _save(store: Checkpoints | None, config: dict[str, Any], phase: int, model: nn.Module, dense_accuracy: float,
          records: list[SoupPhase], base_phases: list[dict[str, Any]], base_accuracy: float | None) -> None:
    if store is not None:
        store.save(phase, config, {"phase": phase, "state_dict": model.state_dict(), "dense_accuracy": dense_accuracy,
                                   "phases": [asdict(r) for r in records], "base_phases": base_phases,
                                   "base_accuracy": base_accuracy})


def _run_phases(work: nn.Module, data: Splits, plan: SoupPlan, *, method: str, config: dict[str, Any],
                targets: list[float], epochs: list[int], records: list[SoupPhase], dense_accuracy: float,
                train_schedule: Schedule, train_steps: int, store: Checkpoints | None,
                base_phases: list[dict[str, Any]], base_accuracy: float | None, progress: bool,
                device: str | torch.device | None) -> SoupResult:
    resumed = len(records)
    trainer = IngredientTrainer(data, min(plan.workers, plan.ingredients), device, progress)
    outer = tqdm(total=len(targets), initial=resumed, disable=not progress,
                 desc=f"SMS x{plan.ingredients} ({plan.vary}) to {targets[-1]:.1%}")
    try:
        for i in range(resumed + 1, len(targets) + 1):
            work, record = soup_phase(work, data, plan, trainer, phase=i, target=targets[i - 1], epochs=epochs[i - 1],
                                      train_schedule=train_schedule, train_steps=train_steps, device=device,
                                      desc=f"SMS phase {i}/{len(targets)} ({targets[i - 1]:.1%})")
            records.append(record)
            _save(store, config, i, work, dense_accuracy, records, base_phases, base_accuracy)
            outer.update(1)
            outer.set_postfix(sparsity=f"{record.sparsity:.3f}", soup=f"{record.accuracy:.3f}",
                              best=f"{record.best_accuracy:.3f}")
    finally:
        trainer.close()
        outer.close()
    return SoupResult(method, records, work, dense_accuracy, config, base_phases, base_accuracy, resumed_phases=resumed)


def sparse_model_soup(model: nn.Module, data: Splits, *, target_sparsity: float, phases: int, ingredients: int,
                      retrain_epochs: int, train_schedule: Schedule | float, train_steps: int, vary: str = "seed",
                      merge: str = "uniform", values: Sequence[float] | None = None, schedule: str = "SLR",
                      criterion: str = "global", momentum: float = 0.9, weight_decay: float = 0.0,
                      batch_size: int = 128, recalibrate_batches: int | None = None,
                      recalibrate_ingredients: bool = False, seed: int = 0, workers: int = 1,
                      checkpoint_dir: str | os.PathLike | None = None, progress: bool = True,
                      device: str | torch.device | None = None) -> SoupResult:
    """Sparse Model Soups from a trained dense ``model``: ``phases`` prune-retrain-merge phases to ``target_sparsity``.

    Each phase prunes the previous soup to 1 - (1 - s)^(i/P), retrains ``ingredients`` copies that
    differ in ``vary`` (``values`` overrides the default grid, see the module docstring), merges them
    (``merge``: 'uniform' or 'greedy' by validation accuracy), recomputes BatchNorm statistics on
    the training split and continues from the soup. ``retrain_epochs`` is each ingredient's budget
    over all phases, split as in :func:`kit.pruning.imp`, at least one epoch per phase;
    ``train_schedule`` / ``train_steps`` describe the dense training the retraining ``schedule``
    derives from. ``recalibrate_ingredients`` recomputes each ingredient's BatchNorm statistics as well
    (a fair soup-vs-ingredient comparison; see the module docstring). ``workers > 1`` trains
    ingredients in parallel processes; ``checkpoint_dir`` saves every phase and resumes after the
    last saved one. All arguments are checked before any work.
    """
    args = check_pruning_arguments(model, data, target_sparsity, criterion, momentum, weight_decay, batch_size, seed)
    s = args["target_sparsity"]
    phases = check_int(phases, "phases", low=1)
    retrain_epochs = check_int(retrain_epochs, "retrain_epochs", low=0)
    if retrain_epochs < phases:
        raise ValueError(f"retrain_epochs must be at least phases={phases} (every ingredient retrains at least one "
                         f"epoch per phase); got {retrain_epochs}")
    plan = check_plan(args, ingredients, vary, merge, values, schedule, recalibrate_batches,
                       recalibrate_ingredients, workers)
    train_schedule = check_train_schedule(train_schedule)
    train_steps = check_int(train_steps, "train_steps", low=1)
    store = _store(checkpoint_dir)

    config = dict(method="sms", target_sparsity=s, phases=phases, retrain_epochs=retrain_epochs,
                  ingredients=plan.ingredients, vary=plan.vary, values=plan.values, merge=plan.merge,
                  schedule=plan.schedule, criterion=plan.criterion, train_steps=train_steps, momentum=plan.momentum,
                  weight_decay=plan.weight_decay, batch_size=plan.batch_size,
                  recalibrate_batches=plan.recalibrate_batches,
                  recalibrate_ingredients=plan.recalibrate_ingredients, seed=plan.seed,
                  **run_fingerprints(model, data, train_schedule, train_steps))
    ckpt = None if store is None else store.latest(config)
    work = copy_model(model)
    if ckpt is None:
        records, dense_accuracy = [], accuracy(work, data.test, device)
    else:
        load_pruned_state_dict(work, ckpt["state_dict"])
        records, dense_accuracy = [SoupPhase.from_dict(r) for r in ckpt["phases"]], float(ckpt["dense_accuracy"])
    targets = [phase_sparsity(s, i, phases) for i in range(1, phases + 1)]
    return _run_phases(work, data, plan, method="sms", config=config, targets=targets,
                       epochs=phase_epochs(retrain_epochs, phases), records=records, dense_accuracy=dense_accuracy,
                       train_schedule=train_schedule, train_steps=train_steps, store=store, base_phases=[],
                       base_accuracy=None, progress=progress, device=device)


def soup_gmp(model: nn.Module, data: Splits, *, target_sparsity: float, epochs: int, ingredients: int,
             retrain_epochs: int, vary: str = "seed", merge: str = "uniform", values: Sequence[float] | None = None,
             start_epoch: int = 0, end_epoch: int | None = None, interval_epochs: int | None = None, lr: float = 0.1,
             schedule: str = "SLR", criterion: str = "global", momentum: float = 0.9, weight_decay: float = 0.0,
             batch_size: int = 128, recalibrate_batches: int | None = None, recalibrate_ingredients: bool = False,
             seed: int = 0, workers: int = 1,
             checkpoint_dir: str | os.PathLike | None = None, progress: bool = True,
             device: str | torch.device | None = None) -> SoupResult:
    """Soups on GMP: one :func:`kit.pruning.gmp` run to ``target_sparsity``, then one soup phase.

    The GMP run (``epochs``, ``start_epoch``, ``end_epoch``, ``interval_epochs``, ``lr``: 10% warm-up,
    then linear to 0) prunes during training; ``ingredients`` copies of its result then retrain for
    ``retrain_epochs`` under its final mask (``schedule`` derived from the GMP learning rate) and are
    merged. With ``checkpoint_dir`` the GMP result is saved as phase 0 and the soup as phase 1.
    """
    args = check_pruning_arguments(model, data, target_sparsity, criterion, momentum, weight_decay, batch_size, seed)
    s = args["target_sparsity"]
    epochs = check_int(epochs, "epochs", low=1)
    lr = check_float(lr, "lr", low=0.0, low_open=True)
    retrain_epochs = check_int(retrain_epochs, "retrain_epochs", low=1)
    plan = check_plan(args, ingredients, vary, merge, values, schedule, recalibrate_batches,
                       recalibrate_ingredients, workers)
    store = _store(checkpoint_dir)
    total = epochs * steps_per_epoch(len(data.train), plan.batch_size)
    # the schedule gmp uses by default, made explicit: the retraining schedule derives from it
    gmp_schedule = retrain_schedule("LLR", retrain_steps=total, train_schedule=Constant(lr), train_steps=total)

    config = dict(method="sms-gmp", target_sparsity=s, epochs=epochs, start_epoch=start_epoch, end_epoch=end_epoch,
                  interval_epochs=interval_epochs, lr=lr, retrain_epochs=retrain_epochs, ingredients=plan.ingredients,
                  vary=plan.vary, values=plan.values, merge=plan.merge, schedule=plan.schedule,
                  criterion=plan.criterion, momentum=plan.momentum, weight_decay=plan.weight_decay,
                  batch_size=plan.batch_size, recalibrate_batches=plan.recalibrate_batches,
                  recalibrate_ingredients=plan.recalibrate_ingredients, seed=plan.seed,
                  **run_fingerprints(model, data))
    ckpt = None if store is None else store.latest(config)
    if ckpt is None:
        base = gmp(model, data, target_sparsity=s, epochs=epochs, start_epoch=start_epoch, end_epoch=end_epoch,
                   interval_epochs=interval_epochs, lr=lr, lr_schedule=gmp_schedule, criterion=plan.criterion,
                   momentum=plan.momentum, weight_decay=plan.weight_decay, batch_size=plan.batch_size, seed=plan.seed,
                   progress=progress, device=device)
        work, records, dense_accuracy = base.model, [], base.dense_accuracy
        base_phases, base_accuracy = [p.row() for p in base.phases], base.accuracy
        _save(store, config, 0, work, dense_accuracy, records, base_phases, base_accuracy)
    else:
        work = copy_model(model)
        load_pruned_state_dict(work, ckpt["state_dict"])
        records = [SoupPhase.from_dict(r) for r in ckpt["phases"]]
        dense_accuracy, base_phases = float(ckpt["dense_accuracy"]), list(ckpt["base_phases"])
        base_accuracy = ckpt["base_accuracy"]
    return _run_phases(work, data, plan, method="sms-gmp", config=config, targets=[s], epochs=[retrain_epochs],
                       records=records, dense_accuracy=dense_accuracy, train_schedule=gmp_schedule, train_steps=total,
                       store=store, base_phases=base_phases, base_accuracy=base_accuracy, progress=progress,
                       device=device)


__all__ = ["MERGE", "MIXED_SHIFTS", "VARY", "SoupPlan", "check_plan", "ingredient_seed", "ingredient_values",
           "soup_gmp", "soup_phase", "sparse_model_soup"]
