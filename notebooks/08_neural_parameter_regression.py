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
# # 08 · Neural Parameter Regression: PDE solution operators
#
# **The question.** A physics-informed network (PINN) solves one PDE for one initial condition, and
# training it takes minutes. Can a network learn the whole *solution operator*, initial condition to
# solution, so that a new initial condition costs one forward pass?
#
# **The idea.** Neural Parameter Regression (NPR) lets a hypernetwork read the initial condition at
# `m` sensor points and output the parameters of a small solution network `N(x, t)`. The hidden
# weight matrices of that network are low rank (`W = U V^T`), so the hypernetwork regresses few
# numbers. Training needs no solution data: the loss is the PDE residual at random collocation
# points, averaged over many sampled initial conditions. The initial condition is met exactly by
# construction, `u(x, t) = u0(x) + t g(x) N(x, t)` (with `g(x) = x (1 - x)` the boundary condition
# of the heat equation is met too). A new initial condition, even one unlike the training ones,
# can be fine-tuned in a few steps starting from the regressed parameters.
#
# Here: the heat equation (`alpha = 0.02`, zero at both ends) and viscous Burgers (`nu = 0.01`,
# periodic), initial conditions as random series of four modes, against a physics-informed DeepONet
# trained on the same data with the same loss, and a PINN trained for each initial condition on
# its own (`cpu` budget).

# %% tags=["parameters"]
import os

budget = os.environ.get("KIT_BUDGET", "cpu")  # smoke | cpu | gpu
seed = 0
rank = 4  # rank of the solution network's hidden layers
amplitudes = [1.0, -0.5, 0.3, 0.0]  # the widget's initial condition: sine amplitudes of modes 1-4
nu = 0.01  # viscosity of the widget's Burgers reference solution
interactive = None  # None: controls in JupyterLab, a static figure when run headless

# %%
import numpy as np

import kit
from kit import operators as op
from kit.recipes import operators as ox

budget, device = kit.setup(budget, seed)
settings = ox.SETTINGS(budget)
print(f"{settings['train']} training and {settings['test']} held-out initial conditions per problem, "
      f"{settings['epochs']} epochs, seed {seed}")

# %% [markdown]
# ## The problems and their reference solutions
# Each problem carries its PDE residual, samplers of initial conditions and a reference solver with
# one signature, `problem.solve(u0, t)`: the exact sine series for heat, a pseudo-spectral ETDRK4
# solver for Burgers (checked against the Cole-Hopf closed form in the tests).

# %%
heat, burgers = ox.problem("heat"), ox.problem("burgers")
u0_heat = ox.held_out("heat", budget)[0]
u0_burgers = ox.held_out("burgers", budget)[0]
x_heat, x_burgers = heat.grid(len(u0_heat)), burgers.grid(len(u0_burgers))
kit.plots.solution_maps(x_heat, ox.TIMES, {"heat": heat.solve(u0_heat, ox.TIMES)}, title="reference: heat")

# %%
kit.plots.solution_maps(x_burgers, ox.TIMES, {"Burgers": burgers.solve(u0_burgers, ox.TIMES)},
                        title="reference: Burgers, a front steepens and then diffuses")

# %% [markdown]
# ## The operator: a hypernetwork regresses a low-rank network
# The hypernetwork reads the initial condition at the sensors and outputs every parameter of the
# solution network, block by block (the counts are this budget's network, rank 4):

# %%
npr_shape = ox.build("npr", "heat", budget, rank=rank)
kit.plots.hypernetwork_diagram(npr_shape.sensors, npr_shape.hidden, npr_shape.solution_blocks(),
                               u0=(x_heat, u0_heat), title="Neural Parameter Regression")

# %% [markdown]
# The solution network's hidden layers apply `W = U V^T` without ever forming `W`; NPR evaluates it
# for a whole batch of initial conditions with `torch.func.vmap` over the regressed parameters:

# %%
kit.show(kit.operators.LowRankSolution.forward)

# %%
kit.show(kit.operators.Operator.field)

# %% [markdown]
# Training is physics-informed: the residual at fresh random points, every point's derivatives from
# one backward pass (each point's `u` depends on its own `x` and `t` only):

# %%
kit.show(kit.operators.residual)

# %% [markdown]
# ## Heat: NPR against a physics-informed DeepONet and per-instance PINNs
# NPR and the DeepONet are trained on the same initial conditions with the same loss and number of
# steps on the kit's one training loop. Prediction, reference and error on a held-out initial
# condition:

# %%
runs = {kind: ox.train_operator(kind, "heat", budget, seed=seed, rank=rank) for kind in ox.KINDS}
npr_heat = runs["npr"].operator
kit.plots.solution_maps(x_heat, ox.TIMES, {"NPR": op.predict(npr_heat, u0_heat, ox.TIMES),
                                           "reference": heat.solve(u0_heat, ox.TIMES)},
                        error_of=("NPR", "reference"), title="heat, a held-out initial condition")

# %% [markdown]
# The per-instance baseline trains NPR's solution network from scratch on each initial condition
# with the same loss (here on the first few held-out ones): it sees the one problem it must solve,
# but pays a whole training run for every new initial condition.

# %%
rows = [ox.error_row(run, budget) for run in runs.values()] + [ox.pinn_baseline("heat", budget)]
kit.record("heat_npr_error", rows[0]["mean"])
kit.plots.table(ox.display_rows(rows), title="heat: error on held-out initial conditions")

# %% [markdown]
# ## Burgers
# The same two operators on viscous Burgers, where the solution forms a steep front: much harder
# for a network that must represent the front for every initial condition at once.

# %%
runs_b = {kind: ox.train_operator(kind, "burgers", budget, seed=seed, rank=rank) for kind in ox.KINDS}
npr_burgers = runs_b["npr"].operator
kit.plots.solution_maps(x_burgers, ox.TIMES, {"NPR": op.predict(npr_burgers, u0_burgers, ox.TIMES),
                                              "reference": burgers.solve(u0_burgers, ox.TIMES)},
                        error_of=("NPR", "reference"), title="Burgers, a held-out initial condition")

# %%
rows_b = [ox.error_row(run, budget) for run in runs_b.values()] + [ox.pinn_baseline("burgers", budget)]
kit.plots.table(ox.display_rows(rows_b), title="Burgers: error on held-out initial conditions")

# %% [markdown]
# ## Out of distribution: fine-tuning in a few steps
# Initial conditions with twice the modes of the training ones. Starting from the parameters NPR
# regresses for them, a few physics-informed steps on that one initial condition:

# %%
tuned = ox.fine_tuning(runs["npr"], budget, steps=(10, 30))
kit.plots.bars([f"initial condition {r['initial_condition']}" for r in tuned],
               {"NPR": [r["before"] for r in tuned], "10 steps": [r["after_10"] for r in tuned],
                "30 steps": [r["after_30"] for r in tuned]},
               xlabel="out-of-distribution initial condition", ylabel="relative L2 error",
               title="heat: fine-tuning the regressed parameters")

# %% [markdown]
# ## The claims, measured
# `bench/npr.py` at the cpu budget, seeds 0-2:

# %% tags=["measured"]
bench = kit.claims.load("npr")
bench.table(bench["errors.rows"], {"problem, model": "{name}", "mean relative L2": "{mean:.4f}",
                                   "worst": "{max:.4f}", "trained parameters": "{trained_parameters:,}",
                                   "training (s)": "{train_seconds:.0f}"},
            title="Error on held-out initial conditions, mean over seeds")

# %% tags=["measured"]
bench = kit.claims.load("npr")
bench.table(bench["pinn.rows"], {"problem, model": "{name}", "mean relative L2": "{mean:.4f}", "worst": "{max:.4f}",
                                 "parameters per solution": "{trained:,}", "steps": "{steps:,}",
                                 "seconds per solution": "{seconds_per_solution:.1f}"},
            title="The per-instance PINN on the first five held-out initial conditions, trained from scratch on each")

# %% tags=["measured"]
bench = kit.claims.load("npr")
bench.say("**Heat.** {h[why]}. **Burgers.** {b[why]}. Both operators stay far from the public reference at this "
          "budget (a few hundred initial conditions, minutes on a CPU); the gpu budget trains on 1,000 initial "
          "conditions for 2,000 epochs with wider hypernetworks, the paper's scale. NPR trains more parameters than "
          "this DeepONet (its hypernetwork), while each solution it regresses has only the low-rank network's.",
          h=bench["verdicts.npr_small_heat_error"], b=bench["verdicts.npr_like_deeponet_burgers"])

# %% tags=["measured"]
bench = kit.claims.load("npr")
bench.say("**A new solution costs one forward pass.** {s[why]} (NPR: {npr_ms:.1f} ms per solution on the grid).",
          s=bench["verdicts.new_solution_in_one_pass"],
          npr_ms=1000 * sum(r["npr_seconds"] for r in bench["speed.rows"]) / len(bench["speed.rows"]))

# %% tags=["measured"]
bench = kit.claims.load("npr")
bench.say("**Fine-tuning.** {h[why]}. But {b[why]}: on Burgers, thirty physics-informed steps from NPR's "
          "parameters move the steep front the wrong way more often than not; the residual alone, at this "
          "budget's collocation and learning rate, does not pull it back.",
          h=bench["verdicts.fine_tuning_lowers_ood_error_heat"], b=bench["verdicts.fine_tuning_lowers_ood_error_burgers"])

# %% [markdown]
# ## The rank of the low-rank layers
# The rank sets how many numbers the hypernetwork regresses per solution. The widget below offers
# these ranks, trained here once (heat, same data and budget):

# %%
trained = {r: npr_heat if r == rank else ox.train_operator("npr", "heat", budget, seed=seed, rank=r).operator
           for r in sorted({*ox.RANKS, rank})}
rank_rows = [{"rank": r, "regressed per solution": f"{trained[r].regressed:,}",
              "mean relative L2": f"{np.mean(op.errors(trained[r], ox.held_out('heat', budget), ox.TIMES)):.4f}"}
             for r in trained]
kit.plots.table(rank_rows, title="heat: NPR's error by rank of the solution network")

# %% tags=["measured"]
bench = kit.claims.load("npr")
bench.table(bench["ranks.rows"], {"rank": "{rank}", "regressed per solution": "{regressed_per_solution:,}",
                                  "mean relative L2": "{mean:.4f}", "worst": "{max:.4f}"},
            title="heat: NPR by rank, mean over seeds 0-2 (cpu budget)")


# %% [markdown]
# ## Try it

# %%
def shaped(x, amplitudes: list[float], periodic: bool) -> np.ndarray:
    """Glue: an initial condition on grid x from four sine amplitudes, scaled to a peak of at most 1."""
    u0 = sum(a * np.sin((k + 1) * (2 if periodic else 1) * np.pi * x) for k, a in enumerate(amplitudes))
    return u0 / max(1.0, float(np.abs(u0).max()))


def heat_view(a1: float, a2: float, a3: float, a4: float, rank: int):
    """Glue for the panel: NPR of the chosen rank (trained above) on the shaped heat initial condition."""
    u0 = shaped(x_heat, [a1, a2, a3, a4], periodic=False)
    return kit.plots.solution_maps(x_heat, ox.TIMES, {"NPR": op.predict(trained[rank], u0, ox.TIMES),
                                                      "reference": heat.solve(u0, ox.TIMES)},
                                   error_of=("NPR", "reference"), title=f"heat, rank {rank}")


kit.widgets.panel(heat_view, interactive=interactive, title="shape a heat initial condition",
                  a1=kit.widgets.slider(-1.0, 1.0, amplitudes[0], step=0.1),
                  a2=kit.widgets.slider(-1.0, 1.0, amplitudes[1], step=0.1),
                  a3=kit.widgets.slider(-1.0, 1.0, amplitudes[2], step=0.1),
                  a4=kit.widgets.slider(-1.0, 1.0, amplitudes[3], step=0.1),
                  rank=kit.widgets.dropdown(sorted(trained), rank))

# %% [markdown]
# The Burgers operator was trained at `nu = 0.01`; the reference solver takes any viscosity, so
# the slider shows how far the solution moves away from what NPR learned:

# %%
def burgers_view(a1: float, a2: float, nu: float):
    """Glue for the panel: the reference at viscosity nu beside NPR (trained at nu = 0.01)."""
    v0 = shaped(x_burgers, [a1, a2, 0.0, 0.0], periodic=True)
    return kit.plots.solution_maps(x_burgers, ox.TIMES, {"NPR (nu = 0.01)": op.predict(npr_burgers, v0, ox.TIMES),
                                                         f"reference, nu = {nu:g}": op.Burgers(nu).solve(v0, ox.TIMES)},
                                   title="Burgers")


kit.widgets.panel(burgers_view, interactive=interactive, title="Burgers: the viscosity of the reference",
                  a1=kit.widgets.slider(-1.0, 1.0, amplitudes[0], step=0.1),
                  a2=kit.widgets.slider(-1.0, 1.0, amplitudes[1], step=0.1),
                  nu=kit.widgets.slider(0.005, 0.05, nu, step=0.005))

# %% [markdown]
# ## Where to go next
# - `KIT_BUDGET=gpu`: 1,000 training initial conditions, 2,000 epochs, hypernetworks of 256-256,
#   Burgers on a 128-point grid.
# - In your own code: `op.NPR(op.Burgers(0.01), sensors=32, rank=4)`, `op.train(npr, initial,
#   checkpoint_dir="ckpt")` (resumes), `op.predict(npr, u0, t)`, `op.fine_tune(npr, u0, steps=30)`,
#   `op.errors(npr, held_out, t)`; a problem of your own subclasses `op.Problem` (residual, series,
#   reference solver).
# - The method: Neural Parameter Regression (the group's paper; no public code exists, the kit builds
#   it from the description).
