"""Byzantine-resilient FedDistill at the cpu budget (MNIST-5k, 10 clients, 10 rounds, seeds 0-2).

Part 1, speed: the clients' part of one round (local training of 10 clients and their public-set
predictions) with the clients batched as one stacked model against a per-client loop, in this one
process, median of several rounds (target: batched at least 2x faster); and the server's step, which
batching does not touch, to give the speedup of the whole round too.
Part 2, accuracy: final server accuracy (mean, min, max over seeds) for
  - naive attacks against the attacker fraction, FedAvg (Gaussian updates) and FedDistill (random one-hot);
  - LMA and CPA at 30% against mean, median, geometric median, Filter, and ExpGuard;
  - LMA against the attacker fraction (0-50%) for each defence, and how often the aggregated target's
    label differs from the honest clients' consensus (why the mean loses accuracy without collapsing);
  - ExpGuard's eta sensitivity, the attackers' total weight per round and every client's weight;
  - harder cases: IID clients with 40% attackers (Filter breaks, ExpGuard holds), non-IID clients
    (Dirichlet 0.3) with 40% attackers (everything breaks), hiding attacks.
Part 3, the paper's setting against the kit's: LMA at 30% on the plain mean, ExpGuard, FedAvg under
Gaussian updates and under Gaussian weights, in the kit preset and the reference preset (data split
among all clients, one local epoch a round, one distillation epoch); and LMA-on-the-mean against the
local epochs per round for both splits, with the honest clients' confidence on the public set.

    python bench/federated.py [--skip-accuracy] [--only reference] [--rounds-timed 5]
"""

from __future__ import annotations

import copy
import statistics
from dataclasses import replace

import common
from common import measure, use_device, write_result

from kit.federated import simulation as sim
from kit.recipes import federated as fx

SEEDS = fx.SEEDS["cpu"]


def speed(rounds: int) -> dict:
    cfg = fx.config("cpu")
    fed = sim.setup(cfg)
    times: dict[str, list[float]] = {"batched": [], "loop": [], "server": []}
    sim.client_predictions(cfg, fed, 0)  # warm-up: first calls allocate and compile nothing twice
    for r in range(rounds):
        for name, batched in (("batched", True), ("loop", False)):
            seconds, honest = measure(lambda b=batched, r=r: sim.client_predictions(replace(cfg, batched=b), fed, r))
            times[name].append(seconds)
        # the server's step (aggregate, distil, evaluate) is the same either way; timed on a copy of the server
        copy_of = replace(fed, server=copy.deepcopy(fed.server))
        times["server"].append(measure(lambda f=copy_of, h=honest, r=r: sim.server_step(cfg, f, h, r, None))[0])
    out = {f"{k}_s": statistics.median(v) for k, v in times.items()}
    out.update(rounds=rounds, all_s=times, speedup=out["loop_s"] / out["batched_s"], target_speedup=2.0,
               whole_round_speedup=(out["loop_s"] + out["server_s"]) / (out["batched_s"] + out["server_s"]))
    print(out)
    return out


def accuracy() -> dict:
    out = {}
    fractions = [0.0, 0.1, 0.2, 0.3, 0.4]
    out["naive_vs_fraction"] = {"fractions": fractions, **fx.accuracy_vs_fraction(
        "cpu", fractions, SEEDS, FedAvg={"protocol": "fedavg", "attack": "gaussian"},
        FedDistill={"attack": "random"}).curves()}
    print(out["naive_vs_fraction"])
    rows = [{"byzantine": 0.0}]
    for attack in ("lma", "cpa"):
        for defence in ("mean", "median", "geometric_median", "filter"):
            rows.append({"byzantine": 0.3, "attack": attack, "defence": defence})
        rows.append({"byzantine": 0.3, "attack": attack, "defence": "mean", "expguard": True})
    out["attacks_vs_defences"] = fx.table("cpu", SEEDS, rows)
    for eta in (0.5, 1.0, 2.0, 5.0):
        out.setdefault("eta", []).extend(fx.table("cpu", SEEDS, [{"byzantine": 0.3, "attack": "lma", "expguard": True,
                                                                  "eta": eta}]))
    defences = ("mean", "median", "geometric_median", "filter")
    lma_fractions = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    out["lma_vs_fraction"] = {"fractions": lma_fractions, **fx.accuracy_vs_fraction(
        "cpu", lma_fractions, SEEDS, **{d: {"attack": "lma", "defence": d} for d in defences},
        ExpGuard={"attack": "lma", "expguard": True}).curves()}
    print(out["lma_vs_fraction"])
    out["target_flips"] = {}
    for fraction in (0.3, 0.4, 0.5):
        histories = fx.runs(fx.config("cpu", byzantine=fraction, attack="lma"), SEEDS)
        out["target_flips"][str(fraction)] = [h["target_flips"] for h in histories]
    iid = [{"byzantine": 0.0}]
    for attack in ("lma", "cpa", "hiding_lma"):
        iid += [{"byzantine": 0.4, "attack": attack, "defence": d} for d in defences]
        iid += [{"byzantine": 0.4, "attack": attack, "defence": d, "expguard": True} for d in ("mean", "median")]
    out["iid_40"] = fx.table("cpu", SEEDS, iid)
    hard = [{"alpha": 0.3}]
    for attack in ("lma", "cpa", "hiding_lma"):
        for defence, guard in (("mean", False), ("median", False), ("filter", False), ("mean", True), ("filter", True)):
            hard.append({"byzantine": 0.4, "alpha": 0.3, "attack": attack, "defence": defence, "expguard": guard})
    out["hard"] = fx.table("cpu", SEEDS, hard)
    out["hiding_scores"] = {}
    for attack in ("lma", "hiding_lma"):
        histories = fx.runs(fx.config("cpu", byzantine=0.3, attack=attack, defence="filter"), SEEDS)
        b = histories[0].config.n_byzantine
        first = [h.records[0]["scores"] for h in histories]
        out["hiding_scores"][attack] = {"attackers": statistics.fmean(x for s in first for x in s[-b:]),
                                        "honest": statistics.fmean(x for s in first for x in s[:-b])}
    print(out["hiding_scores"])
    weights = fx.runs(fx.config("cpu", byzantine=0.3, attack="lma", expguard=True), SEEDS)
    out["attacker_weight_per_round"] = [h.attacker_weight() for h in weights]
    out["client_weights_seed0"] = weights[0]["weights"]
    for key in ("attacks_vs_defences", "eta", "iid_40", "hard"):
        for row in out[key]:
            print(key, row)
    return out


def main() -> None:
    parser = common.parser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--rounds-timed", type=int, default=5)
    parser.add_argument("--only", choices=("reference",), help="measure only this part; keep the rest")
    args = parser.parse_args()
    use_device(args.device)
    payload = {"settings": fx.SETTINGS["cpu"], "seeds": list(SEEDS)}
    keep = ("accuracy", "reference", "verdicts")
    if args.only is None:
        payload["speed"] = speed(args.rounds_timed)
        if not args.skip_accuracy:
            payload["accuracy"] = accuracy()
    else:
        keep += ("speed",)
    payload["reference"] = reference()
    payload["verdicts"] = verdicts(payload["reference"])
    write_result("federated", payload, keep=keep)


LOCAL_EPOCHS = (0.2, 0.5, 1.0, 1.5, 2.0, 3.0)


def reference() -> dict:
    """The paper's claims in both presets, side by side, and what decides between them."""
    out = {"presets": {k: dict(v) for k, v in fx.PRESETS.items()}, "side_by_side": []}
    cases = {"attack-free": {}, "LMA 30%, mean": {"byzantine": 0.3, "attack": "lma"},
             "LMA 30%, ExpGuard": {"byzantine": 0.3, "attack": "lma", "expguard": True},
             "FedAvg, Gaussian updates 30%": {"protocol": "fedavg", "byzantine": 0.3, "attack": "gaussian"},
             "FedAvg, Gaussian weights 30%": {"protocol": "fedavg", "byzantine": 0.3, "attack": "gaussian_weights"},
             "FedDistill, random one-hot 30%": {"byzantine": 0.3, "attack": "random"}}
    for case, overrides in cases.items():
        row = {"case": case}
        for preset in fx.PRESETS:
            row[preset] = fx.final_accuracy(fx.runs(fx.config("cpu", preset=preset, **overrides), SEEDS))
        out["side_by_side"].append(row)
        print(row, flush=True)
    base = {k: v for k, v in fx.PRESETS["reference"].items() if k not in ("split", "local_epochs")}
    out["sensitivity"] = {
        "lma_mean": fx.local_epochs_sensitivity("cpu", SEEDS, LOCAL_EPOCHS, byzantine=0.3, attack="lma", **base),
        "attack_free": fx.local_epochs_sensitivity("cpu", SEEDS, LOCAL_EPOCHS, **base)}
    for row in out["sensitivity"]["lma_mean"]:
        print(row, flush=True)
    return out


def verdicts(ref: dict) -> dict:
    """The paper's headline claims, decided on the reference preset (the paper's setting) and on the kit's."""
    rows = {r["case"]: r for r in ref["side_by_side"]}

    def mean(case: str, preset: str) -> float:
        return statistics.fmean(rows[case][preset])

    out = {}
    for preset in fx.PRESETS:
        free, lma, guard = mean("attack-free", preset), mean("LMA 30%, mean", preset), mean("LMA 30%, ExpGuard", preset)
        out[f"lma_breaks_mean_expguard_restores_{preset}"] = {
            "holds": lma < free - 0.2 and guard > free - 0.03,
            "why": f"{preset} preset: attack-free {free:.1%}, LMA on the mean {lma:.1%}, ExpGuard {guard:.1%} "
                   f"(collapse: 20 points below attack-free; restored: within 3)"}
        avg, distill = mean("FedAvg, Gaussian weights 30%", preset), mean("FedDistill, random one-hot 30%", preset)
        out[f"feddistill_beats_fedavg_{preset}"] = {
            "holds": distill > avg + 0.2,
            "why": f"{preset} preset: FedDistill under random one-hot {distill:.1%}, FedAvg under Gaussian weights "
                   f"{avg:.1%} (far: 20 points)"}
    return out


if __name__ == "__main__":
    main()
