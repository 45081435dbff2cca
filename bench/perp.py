"""PERP at the cpu budget (SmolLM2-135M, Shakespeare split by play): the numbers notebook 05 states.

Part 1, one-shot pruning: held-out perplexity of magnitude, Wanda, SparseGPT at 30/50/70% unstructured
and 2:4, random at 50%.
Part 2, retraining at 50% unstructured: PERP (norm parameters + MaskLoRA rank 4, under 1% of the
parameters) for the budget's steps on magnitude, Wanda and the dense model (the dense run measures
how much of any recovery is adaptation to the Shakespeare domain).
Part 3, cost, in this one process: time per step and peak memory of PERP against full retraining
(all weights, masks kept), with and without activation checkpointing.
Part 4, baselines at 50% magnitude and the same step count: full retraining (the paper's central
comparison: PERP ~ full retraining), norms only, norms + LoRA rank 1 (the paper's 0.27-0.35% of the
parameters) and the default PERP (rank 4, 0.93%) over 3 training seeds; recovery in perplexity and in
cross-entropy (log perplexity), against the dense model and against the dense model retrained the
same way (the domain-adaptation control of part 2).

    python bench/perp.py [--skip-retrain] [--only baselines] [--steps 150] [--cost-steps 8]
"""

from __future__ import annotations

import json
import math
import statistics

import common
from common import RESULTS, use_device, write_result

from kit.language import generate
from kit.recipes import perp as pe

PROMPT = "FALSTAFF. Now, Master Shallow,"


def one_shot(setup: pe.Setup) -> list[dict]:
    rows = pe.sweep(setup, nm=("2:4",), progress=False)
    model, _ = pe.pruned_copy(setup, "random", 0.5, progress=False)
    rows.append({"method": "random", "pattern": "unstructured", "sparsity": 0.5,
                 "perplexity": pe.perplexity(model, setup.heldout), "prune_s": 0.0})
    for r in rows:
        print(r)
    return rows


def retraining(setup: pe.Setup, steps: int) -> dict:
    out = {}
    for method in ("dense", "magnitude", "wanda"):
        model, _ = pe.pruned_copy(setup, method, None if method == "dense" else 0.5, progress=False)
        before = pe.perplexity(model, setup.heldout)
        after, result = pe.perp(setup, model, steps=steps, progress=False)
        out[method] = {"before": before, "after": after, **result.to_dict(),
                       "sample": generate(model, setup.tokenizer, PROMPT, tokens=30)}
        print(method, before, "->", after, result.trainable)
    dense, mag = out["dense"], out["magnitude"]
    out["recovered_vs_dense"] = pe.recovered_fraction(mag["before"], mag["after"], dense["before"])
    out["recovered_vs_dense_retrained"] = pe.recovered_fraction(mag["before"], mag["after"], dense["after"])
    print({k: v for k, v in out.items() if k.startswith("recovered")})
    return out


BASELINES = (  # label, groups, rank, seeds
    ("PERP: norms + LoRA rank 4", pe.PERP_GROUPS, 4, (0, 1, 2)),
    ("norms + LoRA rank 1", pe.PERP_GROUPS, 1, (0,)),
    ("norms only", ("norms", "biases"), None, (0,)),
    ("full retraining", ("all",), None, (0,)),
)


def baselines(setup: pe.Setup, steps: int, dense_retrained: float | None) -> dict:
    """Every baseline retrained from the same 50% magnitude-pruned model, same steps, lr and data."""
    dense = pe.perplexity(setup.model, setup.heldout)
    model, _ = pe.pruned_copy(setup, "magnitude", 0.5, progress=False)
    before = pe.perplexity(model, setup.heldout)
    del model
    rows = []
    for label, groups, rank, seeds in BASELINES:
        for seed in seeds:
            model, _ = pe.pruned_copy(setup, "magnitude", 0.5, progress=False)
            after, result = pe.perp(setup, model, groups=groups, rank=rank, steps=steps, seed=seed, progress=False)
            row = {"method": f"{label} (seed {seed})", "label": label, "seed": seed, "groups": list(groups),
                   "rank": rank, "trainable_percent": result.trainable.percent, "perplexity": after,
                   "recovered_ppl": pe.recovered_fraction(before, after, dense),
                   "recovered_ce": pe.recovered_fraction(math.log(before), math.log(after), math.log(dense)),
                   "last_loss": result.losses[-1], "seconds_per_step": result.seconds_per_step}
            if dense_retrained is not None:
                row["recovered_ppl_vs_dense_retrained"] = pe.recovered_fraction(before, after, dense_retrained)
                row["recovered_ce_vs_dense_retrained"] = pe.recovered_fraction(
                    math.log(before), math.log(after), math.log(dense_retrained))
            rows.append(row)
            print({k: v for k, v in row.items() if k not in ("groups",)}, flush=True)
            del model
    summary = {}
    for label, *_ in BASELINES:
        mine = [r for r in rows if r["label"] == label]
        summary[label] = {key: [r[key] for r in mine] for key in
                          ("perplexity", "recovered_ppl", "recovered_ce", "trainable_percent")}
    return {"steps": steps, "sparsity": 0.5, "pruning": "magnitude", "dense": dense, "pruned": before,
            "dense_retrained": dense_retrained, "rows": rows, "summary": summary}


def cost(setup: pe.Setup, steps: int) -> dict:
    out = {}
    for checkpointing in (False, True):
        for name, groups in (("perp", pe.PERP_GROUPS), ("full", ("all",))):
            model, _ = pe.pruned_copy(setup, "magnitude", 0.5, progress=False)
            _, r = pe.perp(setup, model, groups=groups, steps=steps, checkpointing=checkpointing, progress=False)
            key = f"{name}{'_checkpointing' if checkpointing else ''}"
            out[key] = {**r.to_dict(), "extra_bytes": r.peak_bytes - r.baseline_bytes}
            print(key, out[key]["seconds_per_step"], out[key]["peak_bytes"] / 2**20, out[key]["extra_bytes"] / 2**20)
            del model
        p, f = out["perp" + ("_checkpointing" if checkpointing else "")], out["full" + (
            "_checkpointing" if checkpointing else "")]
        suffix = "_checkpointing" if checkpointing else ""
        out["peak_ratio" + suffix] = p["peak_bytes"] / f["peak_bytes"]
        out["extra_ratio" + suffix] = p["extra_bytes"] / f["extra_bytes"]
        out["time_ratio" + suffix] = p["seconds_per_step"] / f["seconds_per_step"]
    out["target_peak_ratio"] = 0.6
    return out


def main() -> None:
    parser = common.parser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-retrain", action="store_true")
    parser.add_argument("--only", choices=("baselines", "verdicts"),
                        help="measure only this part (verdicts: recompute them from the last result); keep the rest")
    parser.add_argument("--steps", type=int, default=pe.SETTINGS["cpu"]["steps"])
    parser.add_argument("--cost-steps", type=int, default=8)
    args = parser.parse_args()
    use_device(args.device)
    if args.only == "verdicts":
        previous = json.loads((RESULTS / "perp.json").read_text())
        kept = tuple(k for k in previous if k not in ("benchmark", "budget", "machine", "carried_over", "verdicts"))
        write_result("perp", {"verdicts": verdicts(previous["baselines"])}, keep=kept)
        return
    setup = pe.load("cpu")
    payload = {"settings": {k: list(v) if isinstance(v, tuple) else v for k, v in setup.settings.items()},
               "heldout": {"plays": list(pe.play_splits(0).heldout), "tokens": setup.heldout.tokens},
               "load_s": setup.load_seconds}
    keep = ("retraining", "baselines")
    if args.only != "baselines":
        payload["one_shot"] = one_shot(setup)
        payload["cost"] = cost(setup, args.cost_steps)
        if not args.skip_retrain:
            payload["retraining"] = retraining(setup, args.steps)
    else:
        keep = ("one_shot", "cost", "retraining", "baselines")
    previous = pe_previous_dense_retrained(payload)
    payload["baselines"] = baselines(setup, args.steps, previous)
    payload["verdicts"] = verdicts(payload["baselines"])
    write_result("perp", payload, keep=keep)


def verdicts(b: dict) -> dict:
    """The paper's claim: retraining under 1% of the parameters recovers about as much as full retraining."""
    perp, full = b["summary"]["PERP: norms + LoRA rank 4"], b["summary"]["full retraining"]
    p_ce, f_ce = statistics.fmean(perp["recovered_ce"]), statistics.fmean(full["recovered_ce"])
    p_ppl, f_ppl = statistics.fmean(perp["perplexity"]), statistics.fmean(full["perplexity"])
    holds = p_ce >= 0.9 * f_ce
    why = (f"{b['steps']} steps at 50% magnitude: PERP ({perp['trainable_percent'][0]:.2f}% of the parameters) "
           f"perplexity {p_ppl:.1f}, recovers {p_ce:.0%} of the cross-entropy gap; full retraining {f_ppl:.1f}, "
           f"{f_ce:.0%} (about as much: at least 90% of full retraining's recovery)")
    return {"perp_matches_full_retraining": {"holds": holds, "why": why}}


def pe_previous_dense_retrained(payload: dict) -> float | None:
    """The dense model's perplexity after PERP (part 2): this run's, else the last measured one."""
    if "retraining" in payload:
        return payload["retraining"]["dense"]["after"]
    path = RESULTS / "perp.json"
    return json.loads(path.read_text())["retraining"]["dense"]["after"] if path.exists() else None


if __name__ == "__main__":
    main()
