"""Pruning large language models and retraining a sliver of them: PERP (Zimmer et al., 2023).

``llm_pruning``: one-shot pruning of every decoder Linear by magnitude, Wanda (Sun et al.) or
SparseGPT (Frantar and Alistarh), unstructured or N:M, with sequential calibration. ``lora``:
sparsity-preserving MaskLoRA / ScaleLoRA adapters, the parameter groups PERP trains, and
:func:`merge`. ``retraining``: PERP's retraining (:func:`retrain`) through the kit's one loop, full
retraining as the reference. Masks are :mod:`kit.pruning`'s.
"""

from .llm_pruning import LLM_CRITERIA, Pattern, decoder_linears, decoder_sparsity, pattern, prune_llm
from .lora import (
    GROUPS,
    LORA_KINDS,
    LoRALinear,
    Trainable,
    adapter_settings,
    add_lora,
    merge,
    parameter_groups,
    restore_adapters,
    set_trainable,
    trainable_parameters,
)
from .retraining import PERP_GROUPS, RetrainResult, StepStats, retrain

__all__ = ["GROUPS", "LLM_CRITERIA", "LORA_KINDS", "PERP_GROUPS", "LoRALinear", "Pattern", "RetrainResult",
           "StepStats", "Trainable", "adapter_settings", "add_lora", "decoder_linears", "decoder_sparsity", "merge",
           "parameter_groups", "pattern", "prune_llm", "restore_adapters", "retrain", "set_trainable",
           "trainable_parameters"]
