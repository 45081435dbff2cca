# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Merlin-Arthur classifiers: interpretability with guarantees
#
# **The question.** A saliency map says which pixels a classifier "looked at", but nothing makes
# those pixels *mean* anything: a model can be right for reasons the map does not show, and maps
# can be manipulated. Can a classifier come with features that provably carry its class?
#
# **The idea.** Wäldchen, Sharma, Turan, Zimmer, Pokutta (*Interpretability Guarantees with
# Merlin-Arthur Classifiers*, AISTATS 2024) borrow the Merlin-Arthur protocol of interactive
# proofs. Arthur, the verifier, classifies an image from only `k` of its pixels, and may answer
# "don't know". Merlin, a cooperative prover, picks the `k` pixels that should convince Arthur of
# the true class; Morgana, an adversarial prover, picks `k` pixels to make him say a *wrong* class.
# Arthur is trained to be right on Merlin's pixels (**completeness**) and never fooled by
# Morgana's (**soundness**: the true class or "don't know"). If both are high, Merlin's pixels
# must carry the class: the paper bounds their precision, and the mutual information between them
# and the class, from completeness and soundness alone.
#
# Here: MNIST-5k, 4 against 9 (a hard pair), an MLP Arthur with a third output for "don't know",
# pixels in [-1, 1] and hidden pixels shown as 0, both provers per-image Frank-Wolfe over masks of
# `k = 32` pixels (the paper's setting), 3 seeds (`cpu` budget).

# %% tags=["parameters"]
import os

budget = os.environ.get("KIT_BUDGET", "cpu")  # smoke | cpu | gpu
seed = 0
prover = "sfw"  # sfw | network | saliency | random (both Merlin and Morgana)
k = 32  # pixels a prover shows Arthur
digits = [4, 9]  # two digits, or None for all ten
gamma = 2.0  # weight of Morgana's loss in Arthur's (0: train without her)
interactive = None  # None: controls in JupyterLab, a static figure when run headless

# %%
import kit
from kit import merlin_arthur as ma
from kit.recipes import merlin_arthur as mx

budget, device = kit.setup(budget, seed)
seeds = mx.SEEDS(budget)
task = ma.digit_task(digits, seed=seed, budget=budget, n_train=mx.SETTINGS(budget)["n_train"])
print(task, f"| k={k}, gamma={gamma}, {mx.SETTINGS(budget)['epochs']} epochs, seeds={list(seeds)}")

# %% [markdown]
# ## What Arthur sees
# A prover's choice is a mask with exactly `k` ones; Arthur sees the image where the mask is 1 and
# the baseline 0 elsewhere. Here `k` random pixels of a few test digits, in blue:

# %%
x, y = task.test.inputs[:8], task.test.targets[:8]
names = [task.classes[int(c)] for c in y]
random_masks = ma.make_prover("random", k)(x, y, ma.Arthur.build("mlp", task.input_shape, task.num_classes))
kit.plots.chosen_pixels(x, {"random": random_masks}, {"random": names}, title=f"{k} random pixels per digit")

# %% [markdown]
# ## How a prover chooses: Frank-Wolfe over masks
# Merlin wants Arthur's probability of the true class up; Morgana wants the wrong classes' up.
# Choosing the best `k` pixels is combinatorial, so each prover relaxes it: a mask `m` in the
# polytope `{m in [0, 1]^d, sum m <= k}`, optimised per image by stochastic Frank-Wolfe (all images
# of a batch at once), then rounded to its top `k`. The polytope is one more region of
# `kit.frankwolfe`, next to the balls of notebook 01; its linear minimisation oracle puts a 1 on the
# `k` most negative gradient entries, where the gradient is negative:

# %%
kit.show(kit.frankwolfe.NonnegativeKSparsePolytope._lmo)

# %% [markdown]
# The prover runs `kit.frankwolfe.SFW` on the mask and stops once the rounded masks stop changing:

# %%
kit.show(kit.merlin_arthur.SFWProver._select)

# %% [markdown]
# Arthur's loss on Morgana's pixels is `-log(p_true + p_dontknow)`: answering "don't know" costs
# him nothing, answering a wrong class costs him. Computed from log-sum-exps, it stays finite for
# any logits:

# %%
kit.show(kit.merlin_arthur.morgana_loss)

# %% [markdown]
# ## The game, with Morgana and without her
# Every step of `ma.play` is a step of the kit's one training loop: a callback asks both provers
# for their pixels, Arthur trains on both views (`L_Merlin + gamma * L_Morgana`), then any learned
# prover takes its own step. Without Morgana (`gamma = 0`) Arthur trains on Merlin's pixels only;
# Morgana is still asked, so we can see how easily she fools him. Completeness and soundness on the
# training batches, per epoch, over seeds:

# %%
gap = mx.morgana_gap(budget, seeds, k=k, digits=digits)
curves = {f"{label}: {metric}": [run.history[metric] for run in runs]
          for label, runs in gap["runs"].items() for metric in ("completeness", "soundness")}
epochs = list(range(1, mx.SETTINGS(budget)["epochs"] + 1))
kit.plots.band_curves(epochs, curves, xlabel="epoch", ylabel="fraction of training images",
                      title="completeness and soundness during the game")

# %% [markdown]
# On the test digits, against a fresh Frank-Wolfe Morgana:

# %%
rows = gap["grid"].rows()
kit.record("soundness_with_morgana", gap["grid"].mean("with Morgana: soundness"))
kit.record("soundness_without_morgana", gap["grid"].mean("without Morgana: soundness"))
kit.plots.table([{"Arthur trained": r["Arthur trained"], "mean": f"{r['mean']:.3f}",
                  "per seed": ", ".join(f"{v:.3f}" for v in r["values"])} for r in rows],
                title="test completeness and soundness")

# %% [markdown]
# ## What goes wrong without her
# The Arthur trained without Morgana answers confidently from any `k` pixels. Morgana, the same
# optimiser with the opposite goal, finds pixels that make him name the wrong digit on almost every
# image: a "certificate" from this Arthur says nothing. Her pixels (red) and his answer; the sound
# Arthur's answer to the same kind of attack below:

# %%
unsound, sound = gap["runs"]["without Morgana"][0], gap["runs"]["with Morgana"][0]


def answers(run, images, labels):
    """Glue: Morgana's masks against this run's Arthur and his answers as words."""
    masks = run.morgana(images, labels, run.arthur)
    said = run.arthur.decide(ma.mask_features(images, masks))
    words = [*task.classes, "don't know"]
    return masks, [f"{task.classes[int(t)]}, says {words[int(s)]}" for t, s in zip(labels, said, strict=True)]


masks_unsound, said_unsound = answers(unsound, x, y)
masks_sound, said_sound = answers(sound, x, y)
kit.plots.chosen_pixels(x, {"no Morgana in training": masks_unsound, "trained with Morgana": masks_sound},
                        {"no Morgana in training": said_unsound, "trained with Morgana": said_sound},
                        role={"no Morgana in training": "morgana", "trained with Morgana": "morgana"},
                        title="Morgana's pixels and Arthur's answer")

# %% [markdown]
# ## The game in pictures: each prover's pixels
# Against the sound Arthur, the pixels each kind of prover picks as Merlin (blue) and as Morgana
# (red); the network provers are fresh, untrained ones here (they learn in their own game, below). Saliency marks the pixels where a small change moves Arthur most,
# which is not the same as the pixels that decide his answer when they are all he sees; random
# pixels fall mostly on the background.

# %%
shown = {f"{name} as {role}": mx.masks_of(mx.prover(name, k, role, budget, task.input_shape), sound.arthur, x, y)
         for name in ma.PROVERS for role in ("merlin", "morgana")}
kit.plots.chosen_pixels(x, shown, role={label: label.split(" as ")[1] for label in shown},
                        title=f"{k} pixels per prover against the sound Arthur")

# %% [markdown]
# ## Do Merlin's pixels carry the class? Counted precision against the bound
# On a small data set precision can be *counted*: for each image, among all training images that
# show the same pattern (dark or bright) on its `k` chosen pixels, the fraction of the same class.
# A precision of 1 from an image that only matches itself says little, so the bench reports the
# mean number of matching images too. Against it, the paper's bound from completeness and
# soundness, `1 - eps_c - kappa eps_s / (1 - eps_c)` (with `kappa = 1`: no asymmetric feature
# correlation assumed). One game with Morgana per `k`; the pixels of Frank-Wolfe Merlin, saliency
# and random selection, each counted against that game's Arthur:

# %%
ks = kit.budget.choose(budget, smoke=[16, 32], cpu=[8, 16, 32], gpu=[8, 16, 32, 64])
by_k = mx.precision_vs_k(budget, ks, seeds[:1], provers=("sfw", "saliency", "random"), digits=digits)
kit.plots.lines(ks, {"Frank-Wolfe Merlin (counted)": [r["counted_precision"] for r in by_k],
                     "saliency (counted)": [r["saliency_precision"] for r in by_k],
                     "random (counted)": [r["random_precision"] for r in by_k],
                     "bound from completeness and soundness": [r["precision_bound"] for r in by_k]},
                xlabel="k (pixels shown)", ylabel="precision", markers=True,
                title=f"precision of the chosen pixels, seed {seeds[0]}")

# %% [markdown]
# ## The claims, measured
# `bench/merlin_arthur.py` at the cpu budget, seeds 0-2:

# %% tags=["measured"]
bench = kit.claims.load("merlin_arthur")
m = {r["Arthur trained"]: r for r in bench["morgana.rows"]}
bench.say("**Morgana makes Arthur sound.** Trained with her, Arthur keeps completeness "
          "{c:.1%} (seeds {cmin:.1%} to {cmax:.1%}) and reaches soundness {s:.1%} ({smin:.1%} to {smax:.1%}); "
          "trained without her, completeness is {c0:.1%} but soundness against her is {s0:.1%}: {v[why]}. "
          "The bound this gives on the precision of Merlin's pixels is {b:.2f} (information at least {i:.2f} bits "
          "of the 1 bit a 4 or 9 carries).",
          c=m["with Morgana: completeness"]["mean"], cmin=min(m["with Morgana: completeness"]["values"]),
          cmax=max(m["with Morgana: completeness"]["values"]), s=m["with Morgana: soundness"]["mean"],
          smin=min(m["with Morgana: soundness"]["values"]), smax=max(m["with Morgana: soundness"]["values"]),
          c0=m["without Morgana: completeness"]["mean"], s0=m["without Morgana: soundness"]["mean"],
          v=bench["verdicts.morgana_makes_arthur_sound"],
          b=sum(r["precision_bound"] for r in bench["morgana.bounds"]) / len(bench["morgana.bounds"]),
          i=sum(r["information_bound"] for r in bench["morgana.bounds"]) / len(bench["morgana.bounds"]))

# %% tags=["measured"]
bench = kit.claims.load("merlin_arthur")
bench.table(bench["precision.summary"], {"prover, k": "{name}", "counted precision": "{precision:.3f}",
                                         "seeds": "{precision_min:.3f} to {precision_max:.3f}",
                                         "matching images": "{matches:.1f}", "information (bits)": "{information:.2f}"},
            title="Counted precision of Merlin's pixels against the sound Arthur (mean over seeds)")

# %% tags=["measured"]
bench = kit.claims.load("merlin_arthur")
summary = {r["name"]: r for r in bench["precision.summary"]}
bench.say("**Merlin's pixels carry the class.** {v[why]}. The count means most at small k: at k = 8 an image "
          "shares its pattern with {m8:.1f} training images on average and Frank-Wolfe Merlin's are still "
          "{p8:.1%} of its class; at k = 32 an image matches {m32:.1f} on average, mostly only itself, so a precision "
          "near 1 there says little. The counted precision sits above the bound from completeness and soundness, as "
          "it must; the bound is loose because every point of soundness short of 1 costs it in full.",
          v=bench["verdicts.merlin_features_most_precise"], m8=summary["sfw k=8"]["matches"],
          p8=summary["sfw k=8"]["precision"], m32=summary["sfw k=32"]["matches"])

# %% tags=["measured"]
bench = kit.claims.load("merlin_arthur")
bench.table(bench["k_sweep.summary"], {"k": "{k}", "completeness": "{completeness:.3f}",
                                       "soundness": "{soundness:.3f}", "precision bound": "{precision_bound:.3f}",
                                       "counted precision": "{counted_precision:.3f}",
                                       "information bound (bits)": "{information_bound:.2f}",
                                       "counted information (bits)": "{counted_information:.2f}"},
            title="Against k: each a game with Morgana, mean over seeds")

# %% tags=["measured"]
bench = kit.claims.load("merlin_arthur")
bench.table(bench["provers.rows"], {"prover (Merlin and Morgana)": "{name}", "completeness": "{completeness:.3f}",
                                    "soundness": "{soundness:.3f}"},
            title="One game per prover kind: test completeness and soundness, mean over seeds")

# %% tags=["measured"]
bench = kit.claims.load("merlin_arthur")
bench.table([{"prover": p, "x": v} for p, v in bench["speed.relative_to_arthur_step"].items()],
            {"prover": "{prover}", "time per batch of 64 / one Arthur forward+backward": "{x:.1f}x"},
            title="What a prover costs")

# %% tags=["measured"]
bench = kit.claims.load("merlin_arthur")
games = {r["name"]: r for r in bench["provers.rows"]}
bench.say("**Each prover against its own kind, at k = 32** (completeness / soundness): Frank-Wolfe {fc:.1%} / "
          "{fs:.1%}, the learned network {nc:.1%} / {ns:.1%}, saliency {sc:.1%} / {ss:.1%}, random {rc:.1%} / "
          "{rs:.1%}. Each soundness is measured against a Morgana of the kind Arthur trained with, so it certifies "
          "him against that attacker only: quote soundness against the strongest Morgana you have.",
          **{f"{short}{m[0]}": games[f"{name} k=32"][m] for name, short in
             (("sfw", "f"), ("network", "n"), ("saliency", "s"), ("random", "r")) for m in ("completeness", "soundness")})

# %% [markdown]
# ## Try it

# %%
def game_once(prover: str, k: int, digits: str, gamma: float):
    """Glue for the panel: one game at this budget and its provers' pixels on test digits."""
    pair = None if digits == "all ten" else [int(d) for d in digits.split(" vs ")]
    run = mx.train(budget, seed=seed, gamma=gamma, prover_name=prover, k=int(k), digits=pair)
    scores = mx.measure(run)
    images, labels = run.task.test.inputs[:8], run.task.test.targets[:8]
    masks = {"Merlin": run.merlin(images, labels, run.arthur), "Morgana": run.morgana(images, labels, run.arthur)}
    return kit.plots.chosen_pixels(images, masks, role={"Merlin": "merlin", "Morgana": "morgana"},
                                   title=f"{prover}, k={k}, gamma={gamma}: completeness "
                                         f"{scores['completeness']:.2f}, soundness {scores['soundness']:.2f}")


pairs = ["4 vs 9", "3 vs 8", "0 vs 1", "all ten"]
start = "all ten" if digits is None else f"{digits[0]} vs {digits[1]}"
kit.widgets.panel(game_once, interactive=interactive, title="Merlin-Arthur game",
                  prover=kit.widgets.dropdown(list(ma.PROVERS), prover),
                  k=kit.widgets.slider(4, 64, k, step=4),
                  digits=kit.widgets.dropdown(pairs if start in pairs else [start, *pairs], start),
                  gamma=kit.widgets.slider(0.0, 4.0, gamma, step=0.5))

# %% [markdown]
# ## Where to go next
# - `KIT_BUDGET=gpu`: full MNIST (downloaded), a 784-512-256-3 Arthur, 20 epochs, 200 Frank-Wolfe
#   steps per mask. The paper also plays the game on UCI Census with `k = 3` and with a learned
#   U-Net prover at `k = 64` (`prover="network"`).
# - In your own code: `ma.Arthur(backbone, classes)` around any classifier with `classes + 1`
#   outputs; `ma.make_prover("sfw", k, "morgana")(x, y, arthur)`; `ma.play(arthur, data, merlin,
#   morgana, gamma=2, checkpoint_dir="ckpt")` (resumes); `ma.completeness`, `ma.soundness`,
#   `ma.feature_precision`, `ma.precision_bound`, `ma.mutual_information_bound`.
# - The paper: Wäldchen, Sharma, Turan, Zimmer, Pokutta, *Interpretability Guarantees with
#   Merlin-Arthur Classifiers* (AISTATS 2024, arXiv:2206.00759).
