"""IMP revisited at the cpu budget: the numbers notebook 03 states, masked-step cost and IMP wall time.

Part 1, speed: the time of one training step (forward, backward, SGD step) of the MLP 784-300-100-10
at batch 128 with masks at 90% sparsity (kit.pruning.MaskHook, torch.nn.utils.prune layout) divided by
the dense model's, measured interleaved (medians), then the median over 5 rounds with fresh models
(target <= 1.1); and the wall time of each IMP phase.
Part 2, accuracy (MNIST-5k, 10 dense epochs, 3 retraining epochs over 3 phases, seeds 0-2):
IMP with FT/SLR/ALLR and GMP on the MLP and the small CNN, the criteria on the MLP, and accuracy
against the retraining budget at 95%. Part 3, the paper's comparison: IMP with every retraining schedule
(FT, LRW, SLR, CLR, LLR, ALLR) on the MLP at 90/95/98%, and FT's sensitivity to the original schedule's
final learning rate (FT retrains at that rate).

    python bench/pruning.py [--skip-accuracy] [--only schedules] [--seeds 0,1,2] [--repeats 1000] [--rounds 5]
"""

from __future__ import annotations

import statistics

import common
import torch
from common import device, timed, use_device, write_result

import kit
from kit import pruning
from kit.recipes import imp as px

TARGET_STEP_RATIO = 1.1


def step_ratio(repeats: int, seed: int) -> tuple[dict[str, float], float]:
    """Median step time (ms) of the dense and the 90%-masked MLP, interleaved, and masked over dense."""
    g = torch.Generator().manual_seed(seed)
    on = device()
    x, y = torch.rand(128, 1, 28, 28, generator=g).to(on), torch.randint(0, 10, (128,), generator=g).to(on)
    kit.seed_everything(seed)
    dense = kit.models.MLP().to(on)
    masked = pruning.copy_model(dense)
    pruning.apply_masks(masked, pruning.global_magnitude_masks(masked, 0.9))
    runs = {name: (m, torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9))
            for name, m in (("dense", dense), ("masked", masked))}
    times = {name: [] for name in runs}

    def train_step(model, opt):
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    for model, opt in runs.values():
        train_step(model, opt)
    for _ in range(repeats):
        for name, (model, opt) in runs.items():  # interleaved: both see the same machine state
            times[name].append(timed(lambda model=model, opt=opt: train_step(model, opt), on))
    ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    return ms, ms["masked"] / ms["dense"]


def speed(repeats: int, rounds: int) -> dict:
    """Masked over dense training-step time (median over rounds with fresh models), and IMP's wall time per phase."""
    measured = [step_ratio(repeats, seed) for seed in range(rounds)]
    ratios = [r for _, r in measured]
    dense_run = px.train_dense("mnist5k", 0, px.EPOCHS["cpu"])
    per_phase = [p.seconds for p in px.prune(dense_run, 0.95, retrain_epochs=px.RETRAIN_EPOCHS["cpu"]).phases]
    result = {"train_step_ms": {k: statistics.median(ms[k] for ms, _ in measured) for k in ("dense", "masked")},
              "masked_over_dense": statistics.median(ratios), "masked_over_dense_rounds": ratios,
              "target": TARGET_STEP_RATIO, "imp_seconds_per_phase": per_phase}
    print(result)
    return result


def accuracy(seeds: list[int]) -> dict:
    """Every experiment of notebook 03 at the cpu budget."""
    epochs, retrain = px.EPOCHS["cpu"], px.RETRAIN_EPOCHS["cpu"]
    schedules = {f"IMP + {name}": {"schedule": name} for name in ("FT", "SLR", "ALLR")}
    dense = [px.train_dense("mnist5k", s, epochs) for s in seeds]
    mlp = px.compare(dense, px.SPARSITIES, schedules, retrain_epochs=retrain)
    for s in px.SPARSITIES:
        for d in dense:
            mlp.add("GMP", s, px.gmp_run("mnist5k", d.seed, s, epochs + retrain).accuracy)
    cnn_dense = [px.train_dense("mnist5k", s, epochs, model="cnn", **px.CNN) for s in seeds]
    cnn = px.compare(cnn_dense, px.SPARSITIES, schedules, retrain_epochs=retrain)
    for s in px.SPARSITIES:
        for d in cnn_dense:
            cnn.add("GMP", s, px.gmp_run("mnist5k", d.seed, s, epochs + retrain, model="cnn", **px.CNN).accuracy)
    criteria = {name: {"criterion": name, "schedule": "SLR"} for name in ("global", "uniform", "erk", "lamp")}
    by_criterion = px.compare(dense, px.SPARSITIES, criteria, retrain_epochs=retrain)
    budgets = [0, 3, 6, 9, 15]
    curve = px.retraining_curve(dense, 0.95, budgets)
    out = {"dense_epochs": epochs, "retrain_epochs": retrain, "phases": px.PHASES, "seeds": seeds,
           "mlp_schedules": {"rows": mlp.rows(), **mlp.to_dict()},
           "cnn_schedules": {"rows": cnn.rows(), **cnn.to_dict()},
           "mlp_criteria": {"rows": by_criterion.rows(), **by_criterion.to_dict()},
           "retraining_budget_at_95": {"budgets": budgets, "accuracy": curve,
                                       "mean": [statistics.mean(c) for c in zip(*curve, strict=True)]}}
    for name in ("mlp_schedules", "cnn_schedules", "mlp_criteria"):
        print(name)
        for row in out[name]["rows"]:
            print("  " + "  ".join(f"{v:.4f}" if isinstance(v, float) else f"{v:14s}" for v in row.values()))
    print("budget curve", budgets, out["retraining_budget_at_95"]["mean"])
    return out


def main() -> None:
    parser = common.parser()
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--repeats", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=("schedules",), help="measure only this part; keep the rest")
    args = parser.parse_args()
    use_device(args.device)
    seeds = [int(s) for s in args.seeds.split(",")]
    keep = ("accuracy", "schedules", "verdicts")
    payload = {"data": "mnist5k"}
    if args.only is None:
        payload["speed"] = speed(args.repeats, args.rounds)
        if not args.skip_accuracy:
            payload["accuracy"] = accuracy(seeds)
    else:
        keep += ("speed",)
    payload["schedules"] = schedules(seeds)
    payload["verdicts"] = verdicts(payload["schedules"])
    write_result("pruning", payload, keep=keep)


SCHEDULE_SPARSITIES = (0.9, 0.95, 0.98)


def schedules(seeds: list[int]) -> dict:
    """Every retraining schedule against each other, and FT against the original schedule's final rate."""
    dense = [px.train_dense("mnist5k", s, px.EPOCHS["cpu"]) for s in seeds]
    retrain = px.RETRAIN_EPOCHS["cpu"]
    settings = {name: {"schedule": name} for name in kit.pruning.RETRAIN_SCHEDULES}
    grid = px.compare(dense, SCHEDULE_SPARSITIES, settings, retrain_epochs=retrain)
    ft = px.ft_sensitivity(dense, (0.95, 0.98), retrain_epochs=retrain)
    for g in (grid, ft):
        for row in g.rows():
            print("  " + "  ".join(f"{v:.4f}" if isinstance(v, float) else f"{v:14s}" for v in row.values()))
    return {"sparsities": list(SCHEDULE_SPARSITIES), "retrain_epochs": retrain, "seeds": seeds,
            "dense_final_lr": dense[0].schedule(dense[0].steps - 1),
            "all": {"rows": grid.rows(), **grid.to_dict()}, "ft_final_lr": {"rows": ft.rows(), **ft.to_dict()}}


def verdicts(result: dict) -> dict:
    """The paper's claims: SLR and ALLR at least match LRW (and FT) at high sparsity with few retraining epochs."""
    means = {row["setting"]: row for row in result["all"]["rows"]}
    cols = [f"{s:.0%}" for s in result["sparsities"]]
    gaps = {name: [means[name][c] - means["LRW"][c] for c in cols] for name in ("SLR", "ALLR")}
    holds = all(g >= -0.005 for v in gaps.values() for g in v)
    why = "; ".join(f"{n} - LRW: " + ", ".join(f"{100 * g:+.1f}" for g in v) + " points at " + "/".join(cols)
                    for n, v in gaps.items())
    return {"slr_allr_beat_lrw_and_ft": {"holds": holds, "why": why}}


if __name__ == "__main__":
    main()
