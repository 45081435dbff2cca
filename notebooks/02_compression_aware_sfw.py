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
# # 02 · Compression-aware training: SFW in k-support norm balls
#
# **The question.** Can one dense training run produce a model that survives pruning, filter
# removal or a low-rank split *without retraining*?
#
# **The idea.** Train with stochastic Frank-Wolfe (notebook 01) inside a *k-support norm ball*
# per layer. Its vertices put the whole L2 budget on the k largest entries of the gradient, so
# every step adds a k-sparse direction: the weights end up with a few large entries and many
# small ones, and magnitude pruning removes little that matters. The same trick on groups
# (conv filters) and on singular values (rank) gives filter-prunable and low-rank models
# (Zimmer, Spiegel, Pokutta, *Compression-aware Training of Neural Networks using Frank-Wolfe*).

# %% tags=["parameters"]
import os

budget = os.environ.get("KIT_BUDGET", "cpu")  # smoke | cpu | gpu
seed = 0
k = 0.1  # k-support: k as a fraction of each layer's entries
width = 100.0  # radius knob: each layer's ball has L2 diameter 2 * width * E||theta_0||
sparsity = 0.95  # for the single-model panel at the end
interactive = None  # None: controls in JupyterLab, a static figure when run headless

# %%
import kit
from kit.frankwolfe.geometry import ksupport_ball_figure
from kit.recipes import compression as cx
from kit.recipes.frank_wolfe import SGD, Method

budget, device = kit.setup(budget, seed)
epochs = cx.EPOCHS(budget)
setting = kit.recipes.experiment_data(budget, seed)  # smoke: one seed and 600 training images
seeds, data, source = setting.seeds, setting.data, setting.source
print(data, f"| epochs={epochs}, seeds={seeds}")

# %% [markdown]
# ## A ball between L1 and L2
# The k-support norm of `x` is the smallest sum of L2 norms of k-sparse vectors adding up to `x`.
# Its unit ball is the convex hull of all k-sparse vectors of L2 norm 1: the L1 ball at k = 1
# (pointed: its vertices are single coordinates), the L2 ball at k = n (round), and in between a
# ball with flat faces and rounded edges. Frank-Wolfe only ever steps toward its vertices.

# %%
ksupport_ball_figure()

# %% [markdown]
# Its LMO needs no sort of the whole tensor: keep the k entries of largest magnitude, scale them to
# norm r, flip the sign. (A fused C++ kernel computes the same vertex faster; tests hold them equal.)

# %%
kit.show(kit.frankwolfe.KSupportBall)

# %% [markdown]
# ## One dense run, then prune without retraining (MLP, MNIST-5k)
# Every method trains the same MLP (784-300-100-10) for the same epochs; then **global magnitude
# pruning** removes the given fraction of all weights at once, with no retraining, and we test.
# SGD uses momentum `0.9` and weight decay `5e-4`; the penalty baselines add an L1, group-lasso or
# nuclear-norm term (by subgradient, or by the proximal step for prox-SGD); SFW uses gradient
# rescaling with learning rate 1 and, for the k-support ball, k = `10%` of each layer and width 100.

# %%
mlp_runs = cx.train(cx.MLP_METHODS, source, seeds, epochs, device=device)
mlp = cx.evaluate({m.label: mlp_runs[m.label] for m in cx.MLP_METHODS[:-1]}, "global", cx.SPARSITIES, seeds)
kit.plots.table(mlp.rows(), title=f"MLP test accuracy, dense and after global magnitude pruning (mean of {len(seeds)})")

# %%
kit.plots.band_curves(list(cx.SPARSITIES), mlp.curves(), xlabel="fraction of weights removed",
                      ylabel="test accuracy", title="MLP: accuracy after pruning, no retraining")

# %% [markdown]
# Why it works: the k-support model's weights are already split into a few large ones and many
# near zero, so removing the small ones changes little. SGD's weights are spread out.

# %%
kit.plots.weight_histogram({label: next(mlp_runs[label][0].model.parameters()).detach()
                            for label in (SGD.label, cx.K_SUPPORT.label)}, bins=80, log_y=True,
                           title="first-layer weights after training")

# %% [markdown]
# ## The claim, measured

# %% tags=["measured"]
cm = kit.claims.load("compression")
cm_mlp = {row["method"]: row for row in cm["accuracy.mlp_global.rows"]}
sgd, ks = cm_mlp["SGD + weight decay"], cm_mlp["SFW k-support ball"]
gap = {s: ks[f"global {s}"] - sgd[f"global {s}"] for s in (0.9, 0.95, 0.98)}
cm.say("Pruned without retraining, the k-support SFW model {keeps} than SGD with weight decay at 95% and "
       "98% sparsity, while its dense accuracy {stays} 1.5 points of SGD's. Measured at the cpu budget "
       "(`bench/compression.py`, {accuracy.epochs} epochs, seeds {accuracy.mlp_global.seeds[0]}-"
       "{accuracy.mlp_global.seeds[-1]}): dense SGD {sgd.dense:.1%}, k-support {ks.dense:.1%}; at 90% sparsity "
       "SGD {sgd[global 0.9]:.1%} vs k-support {ks[global 0.9]:.1%}; **at 95%: {sgd[global 0.95]:.1%} vs "
       "{ks[global 0.95]:.1%}; at 98%: {sgd[global 0.98]:.1%} vs {ks[global 0.98]:.1%}**. {grows}",
       sgd=sgd, ks=ks,
       keeps="keeps markedly more accuracy" if gap[0.95] >= 0.02 and gap[0.98] >= 0.10
       else "does not keep markedly more accuracy",
       stays="stays within" if sgd["dense"] - ks["dense"] <= 0.015 else "does not stay within",
       grows="The gap grows with sparsity." if gap[0.98] > gap[0.95] > gap[0.9]
       else "The gap does not grow steadily with sparsity.")

# %% tags=["measured"]
cm = kit.claims.load("compression")
cm_mlp = {row["method"]: row for row in cm["accuracy.mlp_global.rows"]}
l1 = cm_mlp["SGD + L1 penalty"]
most = all(l1["global 0.98"] >= row["global 0.98"] for m, row in cm_mlp.items() if m != "SFW k-support ball")
cm.say("*Measured only, no claim test asserts it:* Among the baselines, the L1 penalty (strength 3e-4) {most} at 98% ({l1[global 0.98]:.1%}) but costs "
       "{cost:.1pp} points dense ({l1.dense:.1%}); SFW in the k-sparse polytope (k = 5%) keeps "
       "{kspx[global 0.98]:.1%} at 98%; prox-SGD ({prox[global 0.98]:.1%}), group lasso, SFW in the L2 ball "
       "and the nuclear-norm penalty fall like SGD.",
       l1=l1, kspx=cm_mlp["SFW k-sparse polytope"], prox=cm_mlp["prox-SGD (L1 soft threshold)"],
       cost=cm_mlp["SGD + weight decay"]["dense"] - l1["dense"],
       most="is the most robust" if most else "is not the most robust")

# %%
sgd_label, ks_label = SGD.label, cx.K_SUPPORT.label
gaps = {s: mlp.mean(ks_label, s) - mlp.mean(sgd_label, s) for s in cx.SPARSITIES}
kit.record("dense_sgd", mlp.mean(sgd_label))
kit.record("dense_k_support", mlp.mean(ks_label))
kit.record("pruned_95_sgd", mlp.mean(sgd_label, 0.95))
kit.record("pruned_95_k_support", mlp.mean(ks_label, 0.95))
kit.record("pruned_98_sgd", mlp.mean(sgd_label, 0.98))
kit.record("pruned_98_k_support", mlp.mean(ks_label, 0.98))
print(f"dense: SGD {mlp.mean(sgd_label):.1%}, k-support {mlp.mean(ks_label):.1%}; "
      + ", ".join(f"{s:.0%}: {100 * g:+.1f} points" for s, g in gaps.items()))

# %% [markdown]
# ## A small CNN: unstructured and filter pruning
# The same comparison on a small CNN (two conv blocks with BatchNorm, a linear head reading the
# feature map). For **filter pruning**, each conv layer loses the given fraction of its filters
# with the smallest L1 norm (and their BatchNorm channels), again without retraining. The
# **group k-support ball** treats each filter as one group: its vertices use the k filters of
# largest gradient norm, so training concentrates each layer on few filters.

# %%
cnn_runs = cx.train(cx.CNN_METHODS, source, seeds, epochs, model="cnn", device=device, **cx.CNN)
cnn = cx.evaluate({m.label: cnn_runs[m.label] for m in cx.UNSTRUCTURED_CNN}, "global", cx.SPARSITIES, seeds)
filters = cx.evaluate({m.label: cnn_runs[m.label] for m in cx.FILTERS}, "filters", cx.FILTER_FRACTIONS, seeds)
kit.plots.band_curves(list(cx.SPARSITIES), cnn.curves(), xlabel="fraction of weights removed",
                      ylabel="test accuracy", title="CNN: accuracy after global magnitude pruning")

# %%
kit.plots.band_curves(list(cx.FILTER_FRACTIONS), filters.curves(), xlabel="fraction of each layer's filters removed",
                      ylabel="test accuracy", title="CNN: accuracy after L1 filter pruning, no retraining")

# %% tags=["measured"]
cm = kit.claims.load("compression")
cm_cnn = {row["method"]: row for row in cm["accuracy.cnn_global.rows"]}
kspx = cm_cnn["SFW k-sparse polytope"]
best = all(kspx[f"global {s}"] >= max(row[f"global {s}"] for row in cm_cnn.values()) for s in (0.9, 0.95))
cm.say("*Measured only, no claim test asserts it:* Measured at the cpu budget (seeds {accuracy.cnn_global.seeds[0]}-{accuracy.cnn_global.seeds[-1]}; "
       "`bench/compression.py`), and not all in favour of the k-support balls. **Unstructured:** the k-sparse "
       "polytope {holds} ({kspx[global 0.9]:.1%} at 90% sparsity, {kspx[global 0.95]:.1%} at 95%; SGD "
       "{sgd[global 0.9]:.1%} and {sgd[global 0.95]:.1%}). The unstructured k-support ball does *not* carry "
       "over to this CNN: global magnitude pruning compares weights across layers, the head holds three "
       "quarters of the weights, and past 80% sparsity the k-support model's conv layers are pruned away "
       "({ks[global 0.9]:.1%} at 90%).",
       kspx=kspx, sgd=cm_cnn["SGD + weight decay"], ks=cm_cnn["SFW k-support ball"],
       holds="holds up best" if best else "does not hold up best")

# %% tags=["measured"]
cm = kit.claims.load("compression")
cm_cnn = {row["method"]: row for row in cm["accuracy.cnn_filters.rows"]}
lasso, gks = cm_cnn["SGD + group-lasso penalty (1e-2)"], cm_cnn["SFW group k-support ball"]
most = all(lasso[f"filters {s}"] >= max(row[f"filters {s}"] for row in cm_cnn.values()) for s in (0.5, 0.75))
beats = all(gks[f"filters {s}"] > lasso[f"filters {s}"] for s in cm["accuracy.cnn_filters.levels"])
cm.say("*Measured only, no claim test asserts it:* **Filters:** the group-lasso penalty (strength 1e-2) {most}, {lasso[filters 0.5]:.1%} with half of "
       "each layer's filters removed and {lasso[filters 0.75]:.1%} at three quarters (SGD "
       "{sgd[filters 0.5]:.1%} and {sgd[filters 0.75]:.1%}); the group k-support ball {keeps} its accuracy "
       "with a quarter of the filters removed ({gks[filters 0.25]:.1%}) but drops to {gks[filters 0.5]:.1%} "
       "at half. At this scale and with these settings it {beats} the penalty; the paper's setting "
       "(ResNets on CIFAR, long training) is the `gpu` budget's.",
       lasso=lasso, gks=gks, sgd=cm_cnn["SGD + weight decay"],
       most="is the most robust" if most else "is not the most robust",
       keeps="keeps" if gks["filters 0.25"] >= gks["dense"] - 0.005 else "does not keep",
       beats="beats" if beats else "does not beat")

# %%
kit.plots.table(cnn.rows(), title="CNN, global magnitude pruning")

# %%
kit.plots.table(filters.rows(), title="CNN, filter pruning")

# %% [markdown]
# ## Low rank: spectral k-support against a nuclear-norm penalty
# The **spectral k-support ball** is the k-support ball of the singular values: its vertices are
# rank-k matrices, found from the top-k singular triplets by a few warm-started block power
# iterations. A nuclear-norm penalty needs the full SVD of every layer at every step. After
# training, every layer but the output layer is split in two by its truncated SVD, keeping the
# given fraction of its rank.

# %%
low_rank = cx.evaluate({m.label: mlp_runs[m.label] for m in cx.LOW_RANK}, "rank", cx.RANK_SPARSITIES, seeds)
kit.plots.band_curves(list(cx.RANK_SPARSITIES), low_rank.curves(), xlabel="fraction of each layer's rank removed",
                      ylabel="test accuracy", title="MLP: accuracy after a truncated-SVD split, no retraining")

# %%
kit.plots.table(low_rank.rows(), title="MLP, truncated SVD (output layer kept)")

# %% tags=["measured"]
cm = kit.claims.load("compression")
rows = cm["accuracy.mlp_rank.rows"]
span = {level: [row[f"rank {s}"] for row in rows for s in levels]
        for level, levels in {"90": (0.5, 0.9), "95": (0.95,), "98": (0.98,)}.items()}
cm.say("*Measured only, no claim test asserts it:* Measured at the cpu budget: removing up to 90% of each hidden layer's rank costs no method "
       "anything ({r90.min:.1pp}-{r90.max:.1%}); at 95% and 98% they all drop alike "
       "({r95.min:.1pp}-{r95.max:.1%}, then {r98.min:.0pp}-{r98.max:.0%}). On accuracy the spectral k-support "
       "ball does not beat SGD or the nuclear penalty here; it matches the penalty at a fraction of its compute.",
       r90=span["90"], r95=span["95"], r98=span["98"])

# %% [markdown]
# The compute per step: one optimizer step on the MLP (the gradients of one batch), median of
# repeated steps. The nuclear penalty pays a full SVD per layer per step; the spectral k-support
# step only the top-k singular triplets (warm-started block power iterations).

# %% tags=["measured"]
cm = kit.claims.load("compression")
cm.say("*Measured only, no claim test asserts it:* Measured (`bench/compression.py`): {speed.step_ms[SFW spectral k-support ball]:.1f} ms against "
       "{speed.step_ms[SGD + nuclear-norm penalty]:.1f} ms per step, a ratio of "
       "{speed.spectral_step_over_nuclear_step:.2f} (SGD: {speed.step_ms[SGD + weight decay]:.2f} ms); the "
       "LMO alone costs {speed.spectral_lmo_over_full_svd:.2f} of a full SVD of the 300x784 layer.")

# %%
batch = next(iter(data.loaders(batch_size=128)["train"]))
step_ms = {}
for method in (SGD, cx.NUCLEAR, cx.SPECTRAL_K_SUPPORT):
    kit.seed_everything(seed)
    step_ms[method.label] = 1e3 * cx.step_time(method, kit.models.MLP(data.input_shape), batch)
kit.plots.table([{"method": label, "ms per step": ms, "x SGD": ms / step_ms[SGD.label]}
                 for label, ms in step_ms.items()], title="optimizer step on the MLP (median)")

# %% [markdown]
# ## Play
# Pick k, the radius knob and a sparsity; **Run** trains one k-support MLP (at most 5 epochs),
# prunes it without retraining and compares with SGD at the same sparsity.

# %%
def prune_one(k: float = k, width: float = width, sparsity: float = sparsity):
    """Glue for the panel: train SGD and one k-support model with kit, prune both, tabulate."""
    method = Method("SFW k-support ball", "k_support", k=k, width=width)
    runs = cx.train((SGD, method), data, [seed], min(epochs, 5), progress=False, device=device)
    result = cx.evaluate(runs, "global", [sparsity], [seed])
    return kit.plots.table(result.rows(), title=f"k = {k:g}, width {width:g}: test accuracy")


kit.widgets.panel(prune_one, interactive=interactive, title="k-support SFW: k, radius, sparsity",
                  k=kit.widgets.slider(0.01, 1.0, k, step=0.01),
                  width=kit.widgets.slider(1.0, 300.0, width, step=1.0),
                  sparsity=kit.widgets.slider(0.5, 0.99, sparsity, step=0.01))

# %% [markdown]
# ## Where to go next
# - `KIT_BUDGET=gpu`: full MNIST, 60 epochs; `make sweep NB=02_compression_aware_sfw PARAM=k VALUES=0.02,0.05,0.1,0.3`.
# - In your own code: `opt = kit.frankwolfe.sfw_setup("k_support", k=0.1, width=100, lr=1.0)(model)`,
#   `kit.train.fit(model, data, optimizer=opt)`, then `kit.pruning.prune_global(model, 0.95,
#   input_shape=...)`; `kit.pruning.prune_filters` and `kit.pruning.svd_split` for the structured
#   variants; `kit.frankwolfe.DelayedK` starts with k = n and switches to the target k later.
# - `kit.frankwolfe.GroupKSupportBall`, `SpectralKSupportBall` and `kit.frankwolfe.penalties`
#   (`PenalizedSGD`: L1, group lasso, nuclear norm, by subgradient or prox) for your own layers.
