"""PERP at the cpu budget (SmolLM2-135M, Shakespeare split by play): the numbers notebook 05 states.

Part 1, one-shot pruning: held-out perplexity of magnitude, Wanda, SparseGPT at 30/50/70% unstructured
and 2:4, random at 50%.
Part 2, retraining at 50% unstructured: PERP (norm parameters + MaskLoRA rank 4, under 1% of the
parameters) for the budget's steps on magnitude, Wanda and the dense model (the dense run measures
how much of any recovery is adaptation to the Shakespeare domain).
Part 3, cost, in this one process: time per step and peak memory of PERP against full retraining
(all weights, masks kept), with and without activation checkpointing.

    python bench/perp.py [--skip-retrain] [--steps 150] [--cost-steps 8]
"""

from __future__ import annotations

import argparse

from common import write_result

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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-retrain", action="store_true")
    parser.add_argument("--steps", type=int, default=pe.SETTINGS["cpu"]["steps"])
    parser.add_argument("--cost-steps", type=int, default=8)
    args = parser.parse_args()
    setup = pe.load("cpu")
    payload = {"settings": {k: list(v) if isinstance(v, tuple) else v for k, v in setup.settings.items()},
               "heldout": {"plays": list(pe.play_splits(0).heldout), "tokens": setup.heldout.tokens},
               "load_s": setup.load_seconds}
    payload["one_shot"] = one_shot(setup)
    payload["cost"] = cost(setup, args.cost_steps)
    if not args.skip_retrain:
        payload["retraining"] = retraining(setup, args.steps)
    write_result("perp", payload, keep=("retraining",))


if __name__ == "__main__":
    main()
