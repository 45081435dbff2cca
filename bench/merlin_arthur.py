"""Merlin-Arthur classifiers at the cpu budget (MNIST-5k, 4 against 9, an MLP Arthur, seeds 0-2).

Part 1, Morgana: Arthur trained with Morgana (gamma = 2) and without her (gamma = 0), both provers the
Frank-Wolfe optimiser at k = 32 (the paper's setting); test completeness and soundness per seed, the
per-epoch curves, and the bounds on precision and mutual information that follow.
Part 2, precision: against the sound Arthur of each seed, the counted precision of the features that
Frank-Wolfe Merlin, saliency and random selection pick at k = 8, 16, 32 (pixels as dark or bright),
with the mean number of matching samples and the information it implies.
Part 3, k: completeness, soundness, the precision bound and the counted precision against k.
Part 4, provers: one game per prover kind (as both Merlin and Morgana) and k, completeness and soundness.
Part 5, speed: each prover's time per batch of 64 relative to one Arthur forward and backward pass.

    python bench/merlin_arthur.py [--only morgana|precision|k|provers|speed] [--device cuda]
"""

from __future__ import annotations

import statistics

import common
from common import use_device, write_with_verdicts

from kit.merlin_arthur import PROVERS
from kit.recipes import merlin_arthur as mx

SEEDS = mx.SEEDS["cpu"]
PRECISION_KS = (8, 16, 32)
K_SWEEP = (8, 16, 32, 64)
PROVER_KS = (16, 32)
PARTS = ("morgana", "precision", "k", "provers", "speed")


def morgana() -> tuple[dict, list]:
    gap = mx.morgana_gap("cpu", SEEDS)
    out = {"prover": "sfw", "k": mx.SETTINGS["cpu"]["k"], "gamma": mx.GAMMA, "seeds": list(SEEDS),
           "epochs": mx.SETTINGS["cpu"]["epochs"], "rows": gap["grid"].rows(), "curves": {}, "bounds": []}
    for label, runs in gap["runs"].items():
        out["curves"][label] = {key: [r.history[key] for r in runs] for key in ("completeness", "soundness")}
    for run in gap["runs"]["with Morgana"]:
        out["bounds"].append(mx.measure(run))
    print({k: v for k, v in out.items() if k != "curves"})
    return out, gap["runs"]["with Morgana"]


def precision(sound_runs: list) -> dict:
    rows = [row | {"seed": seed} for seed, run in zip(SEEDS, sound_runs, strict=True)
            for row in mx.precision_by_prover(run, PRECISION_KS)]
    summary = []
    for name in ("sfw", "saliency", "random"):
        for k in PRECISION_KS:
            mine = [r for r in rows if r["prover"] == name and r["k"] == k]
            summary.append({"name": f"{name} k={k}", "prover": name, "k": k,
                            "precision": statistics.fmean(r["precision"] for r in mine),
                            "precision_min": min(r["precision"] for r in mine),
                            "precision_max": max(r["precision"] for r in mine),
                            "matches": statistics.fmean(r["matches"] for r in mine),
                            "information": statistics.fmean(r["information"] for r in mine)})
    out = {"levels": mx.PRECISION_LEVELS, "ks": list(PRECISION_KS), "rows": rows, "summary": summary}
    print(summary)
    return out


def k_sweep() -> dict:
    rows = mx.precision_vs_k("cpu", K_SWEEP, SEEDS)
    summary = [{"name": f"k={k}", "k": k, **{key: statistics.fmean(r[key] for r in rows if r["k"] == k)
                                              for key in ("completeness", "soundness", "precision_bound",
                                                          "counted_precision", "information_bound",
                                                          "counted_information")}} for k in K_SWEEP]
    print(summary)
    return {"ks": list(K_SWEEP), "rows": rows, "summary": summary}


def provers() -> dict:
    rows = mx.prover_table("cpu", SEEDS, PROVERS, PROVER_KS)
    for row in rows:
        row["name"] = f"{row['prover']} k={row['k']}"
    print(rows)
    return {"ks": list(PROVER_KS), "rows": rows}


def speed() -> dict:
    run = mx.train("cpu", seed=0)
    out = mx.prover_speed(run, PROVERS, batch=64, repeats=7)
    print(out)
    return {"batch": 64, "k": run.merlin.k, "relative_to_arthur_step": {p: out[p] for p in PROVERS},
            "arthur_step_s": out["arthur_step_s"]}


def verdicts(payload: dict) -> dict:
    """The paper's claims, at this budget: Morgana makes Arthur sound; Merlin's features are the most precise."""
    out = {}
    if "morgana" in payload:
        rows = {r["Arthur trained"]: r["values"] for r in payload["morgana"]["rows"]}
        gaps = [a - b for a, b in zip(rows["with Morgana: soundness"], rows["without Morgana: soundness"],
                                      strict=True)]
        complete = min(rows["with Morgana: completeness"])
        holds = min(gaps) >= 0.3 and complete >= 0.9
        out["morgana_makes_arthur_sound"] = {
            "holds": holds, "gap_min": min(gaps),
            "why": f"soundness with Morgana minus without: {min(gaps):.2f} to {max(gaps):.2f} over "
                   f"{len(gaps)} seeds; completeness with Morgana at least {complete:.3f}"}
    if "precision" in payload:
        summary = {(r["prover"], r["k"]): r for r in payload["precision"]["summary"]}
        margins = [summary[("sfw", k)]["precision_min"] - max(summary[(p, k)]["precision_max"]
                                                             for p in ("saliency", "random"))
                   for k in payload["precision"]["ks"]]
        out["merlin_features_most_precise"] = {
            "holds": min(margins) > 0, "margin_min": min(margins),
            "why": f"Frank-Wolfe Merlin's worst seed beats the best seed of saliency and random by "
                   f"{min(margins):.3f} or more at k = {', '.join(map(str, payload['precision']['ks']))}"}
    return out


def main() -> None:
    args = common.parts_parser(__doc__, PARTS).parse_args()
    use_device(args.device)
    payload: dict = {"data": "mnist5k 4 vs 9", "arthur": f"MLP {mx.SETTINGS['cpu']['widths']}"}
    parts = PARTS if args.only is None else (args.only,)
    sound_runs = None
    if "morgana" in parts or "precision" in parts:
        result, sound_runs = morgana()
        if "morgana" in parts:
            payload["morgana"] = result
    if "precision" in parts:
        payload["precision"] = precision(sound_runs)
    if "k" in parts:
        payload["k_sweep"] = k_sweep()
    if "provers" in parts:
        payload["provers"] = provers()
    if "speed" in parts:
        payload["speed"] = speed()
    write_with_verdicts("merlin_arthur", payload, ("morgana", "precision", "k_sweep", "provers", "speed"), verdicts,
                        args.only)


if __name__ == "__main__":
    main()
