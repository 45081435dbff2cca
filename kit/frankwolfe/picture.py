"""Deprecated path: moved to kit.frankwolfe.geometry (kit 0.2; this alias goes in 0.3)."""

from ..deprecation import alias_module

alias_module(__name__, "kit.frankwolfe.geometry")
