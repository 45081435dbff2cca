"""Pruning: the one mask mechanism (``torch.nn.utils.prune`` convention), criteria, retraining schedules,
compression evaluation."""

from .algorithms import (
    CHECKPOINT_FORMAT,
    ImpResult,
    PhaseResult,
    bimp,
    cubic_sparsity,
    gmp,
    imp,
    phase_epochs,
    phase_sparsity,
)
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
from .masks import (
    PRUNABLE_TYPES,
    LayerSparsity,
    MaskHook,
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
from .soups import (
    ECE_BINS,
    MERGE,
    VARY,
    IngredientResult,
    SoupPhase,
    SoupResult,
    ensemble_accuracy,
    expected_calibration_error,
    greedy_soup,
    ingredient_values,
    interpolate,
    pairwise_distances,
    recalibrate_batchnorm,
    soup_gmp,
    sparse_model_soup,
    uniform_soup,
)

__all__ = ["ALLR", "CLR", "CRITERIA", "FT", "LLR", "LRW", "PRUNABLE_TYPES", "RETRAIN_SCHEDULES", "SLR", "Compressed",
           "LayerSparsity", "MaskHook", "SparsityReport", "allr_peak", "apply_masks", "check_sparsity", "copy_model",
           "count_macs", "effective_weight", "erk_densities", "erk_masks", "global_magnitude_masks", "is_masked",
           "lamp_masks", "lamp_scores", "layerwise_magnitude_masks", "load_pruned_state_dict", "lr_range",
           "masks_for", "masks_of", "prunable", "prune_filters", "prune_global", "random_masks",
           "refresh_masked", "relative_distance", "remaining_parameters", "remove_masks", "retrain_schedule",
           "sparsity_report", "svd_rank", "svd_split", "uniform_masks", "uniform_plus_masks"]
__all__ += ["CHECKPOINT_FORMAT", "ImpResult", "PhaseResult", "bimp", "cubic_sparsity", "gmp", "imp", "phase_epochs",
            "phase_sparsity"]
__all__ += ["ECE_BINS", "MERGE", "VARY", "IngredientResult", "SoupPhase", "SoupResult", "ensemble_accuracy",
            "expected_calibration_error", "greedy_soup", "ingredient_values", "interpolate", "pairwise_distances",
            "recalibrate_batchnorm", "soup_gmp", "sparse_model_soup", "uniform_soup"]
