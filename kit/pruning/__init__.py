"""Pruning: the one mask mechanism (``torch.nn.utils.prune`` convention), criteria, retraining schedules,
IMP / BIMP / GMP and their phases, compression evaluation.

Modules: ``masks`` (and its speed path ``mask_hook``), ``criteria``, ``schedules`` (FT, LRW, SLR, CLR,
LLR, ALLR), ``phases`` (what every prune-retrain phase shares: phase sparsity, epochs and seed, the
prune step), ``algorithms`` (IMP, BIMP, GMP), ``compress`` (pruning without retraining: global,
filters, truncated SVD). Sparse model soups live in :mod:`kit.soups`, LLM pruning and PERP in
:mod:`kit.perp`.
"""

from ..deprecation import moved_names
from .algorithms import ImpResult, PhaseResult, bimp, cubic_sparsity, gmp, imp
from .compress import Compressed, count_macs, prune_filters, prune_global, remaining_parameters, svd_rank, svd_split
from .criteria import (
    CRITERIA,
    check_sparsity,
    erk_densities,
    erk_masks,
    global_magnitude_masks,
    lamp_masks,
    lamp_scores,
    layerwise_magnitude_masks,
    masks_for,
    random_masks,
    uniform_masks,
    uniform_plus_masks,
)
from .mask_hook import MaskHook
from .masks import (
    PRUNABLE_TYPES,
    LayerSparsity,
    SparsityReport,
    apply_masks,
    copy_model,
    effective_weight,
    is_masked,
    load_pruned_state_dict,
    masks_of,
    prunable,
    refresh_masked,
    remove_masks,
    sparsity_report,
)
from .phases import CHECKPOINT_FORMAT, PruneStep, phase_epochs, phase_seed, phase_sparsity, prune_step
from .schedules import (
    ALLR,
    CLR,
    FT,
    LLR,
    LRW,
    RETRAIN_SCHEDULES,
    SLR,
    allr_peak,
    lr_range,
    relative_distance,
    retrain_schedule,
)

__all__ = [
    "ALLR", "CHECKPOINT_FORMAT", "CLR", "CRITERIA", "FT", "LLR", "LRW", "PRUNABLE_TYPES", "RETRAIN_SCHEDULES", "SLR",
    "Compressed", "ImpResult", "LayerSparsity", "MaskHook", "PhaseResult", "PruneStep", "SparsityReport",
    "allr_peak", "apply_masks", "bimp", "check_sparsity", "copy_model", "count_macs", "cubic_sparsity",
    "effective_weight", "erk_densities", "erk_masks", "global_magnitude_masks", "gmp", "imp", "is_masked",
    "lamp_masks", "lamp_scores", "layerwise_magnitude_masks", "load_pruned_state_dict", "lr_range", "masks_for",
    "masks_of", "phase_epochs", "phase_seed", "phase_sparsity", "prunable", "prune_filters", "prune_global",
    "prune_step", "random_masks", "refresh_masked", "relative_distance", "remaining_parameters", "remove_masks",
    "retrain_schedule", "sparsity_report", "svd_rank", "svd_split", "uniform_masks", "uniform_plus_masks",
]

# moved in 0.2: sparse model soups to kit.soups, LLM pruning and PERP to kit.perp
_SOUPS = ("ECE_BINS", "MERGE", "VARY", "IngredientResult", "SoupPhase", "SoupResult", "ensemble_accuracy",
          "expected_calibration_error", "greedy_soup", "ingredient_values", "interpolate", "pairwise_distances",
          "recalibrate_batchnorm", "soup_gmp", "sparse_model_soup", "uniform_soup")
_PERP = ("LLM_CRITERIA", "LORA_KINDS", "PERP_GROUPS", "LoRALinear", "Pattern", "RetrainResult", "Trainable",
         "add_lora", "decoder_linears", "decoder_sparsity", "merge", "parameter_groups", "pattern", "prune_llm",
         "retrain", "set_trainable", "trainable_parameters")
__getattr__ = moved_names(__name__, {**dict.fromkeys(_SOUPS, "kit.soups"), **dict.fromkeys(_PERP, "kit.perp")})
