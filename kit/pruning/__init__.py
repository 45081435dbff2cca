"""Pruning: the one mask mechanism (``torch.nn.utils.prune`` convention), criteria, compression evaluation."""

from .compress import Compressed, count_macs, prune_filters, prune_global, remaining_parameters, svd_rank, svd_split
from .criteria import check_sparsity, global_magnitude_masks, layerwise_magnitude_masks
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
    remove_masks,
    sparsity_report,
)

__all__ = ["PRUNABLE_TYPES", "Compressed", "LayerSparsity", "SparsityReport", "apply_masks", "check_sparsity",
           "copy_model", "count_macs", "effective_weight", "global_magnitude_masks", "is_masked",
           "layerwise_magnitude_masks", "load_pruned_state_dict", "masks_of", "prunable", "prune_filters",
           "prune_global", "remaining_parameters", "remove_masks", "sparsity_report", "svd_rank", "svd_split"]
