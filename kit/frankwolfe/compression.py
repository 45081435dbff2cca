"""Deprecated path: moved to kit.recipes.compression (kit 0.2; this alias goes in 0.3)."""

from ..deprecation import alias_module

alias_module(__name__, "kit.recipes.compression")
