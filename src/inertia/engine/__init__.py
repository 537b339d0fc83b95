"""The step engine: plans, state, policies and dispatch around the kernels.

:mod:`~inertia.engine.state` owns the state (created lazily, the step count on the
parameter's device, the dtype policy); :mod:`~inertia.engine.plan` decides which kernel
takes which tensor; :mod:`~inertia.engine.step` runs a step (non-finite policies,
clipping, AMP, the operators of :mod:`inertia.backends.ops`). It imports the rules and
the backends and is imported by :mod:`inertia.optim`, never the other way round.
"""
from .step import NonFiniteGradientError, init_group, step

__all__ = ["step", "init_group", "NonFiniteGradientError"]
