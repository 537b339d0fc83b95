"""What a run's outcome means: reached, not reached, diverged, failed.

These definitions are shared by the runner (which stops a diverging run) and by scoring
(which reads outcomes off stored records); the module is plain Python so both can use it.

**Reached.** A run reaches its target at the first evaluation from which the *validation*
metric meets the target at every later evaluation, up to and including the last one. One
lucky evaluation is not enough: a run that touches 90% accuracy and ends at 78% has not
reached 90%. Its time to target is that evaluation's step (and training seconds); a run
that never holds the target has time to target infinity, and stays in the statistics as a
miss. In symbols, with evaluations :math:`(s_j, v_j)`, :math:`j = 0..J`,

.. math::
    s^\\star = \\min \\{ s_j : v_i \\text{ meets the target for all } i \\ge j \\}.

**Diverged.** Training stops, and the run is *diverged*, at the first step where

* the training loss is NaN or infinite, or the validation metric is, or a parameter is
  (parameters are checked at every evaluation and at the end);
* the optimizer raises :class:`inertia.NonFiniteGradientError`; or
* the loss *explodes* (:class:`Watchdog`): the median of the last :data:`WINDOW` training
  losses rises above the best such median so far by more than :data:`FACTOR` times the
  loss's scale at the start,

  .. math::
      \\tilde L_t - \\min_{s \\le t} \\tilde L_s > K \\cdot \\max(|L_1|,\\; L_1 - \\min_{s \\le t} \\tilde L_s),

  with :math:`\\tilde L_t` the windowed median and :math:`K` = :data:`FACTOR`. The scale is
  the size of the first loss or the descent achieved so far, whichever is larger, so the
  rule needs no knowledge of the loss's minimum and works for losses near zero or negative
  (a loss that starts at -3 and has reached -5 explodes above +25). The median ignores a
  single bad mini-batch; a loss that genuinely blows up stays up. The rule is judged once
  the window is full (from step :data:`WINDOW` on); non-finite values stop a run at once. When the scale is zero
  (a loss of exactly 0 at step 1 that never descends) only the non-finite checks apply.

**Failed.** An exception other than the above stopped training; its message is kept.
A failed run is reported, never silently dropped, and retried when the comparison is
run again (a failure may be the machine's, such as running out of memory).
"""
from __future__ import annotations

import math
from collections import deque
from statistics import median
from typing import Sequence

REACHED, NOT_REACHED, DIVERGED, FAILED = "reached", "not reached", "diverged", "failed"
OUTCOMES = (REACHED, NOT_REACHED, DIVERGED, FAILED)

#: training losses in the explosion rule's moving median
WINDOW = 5
#: how many start scales above its best the smoothed loss may rise before the run is stopped
FACTOR = 10.0

DEFINITIONS = {
    REACHED: ("the validation metric met the target at some evaluation and at every later one, "
              "to the end of the budget (one lucky evaluation is not enough)"),
    NOT_REACHED: "trained to the end of the budget without holding the target",
    DIVERGED: (f"stopped early: loss, metric or parameters became NaN/inf, or the loss exploded (the median of "
               f"the last {WINDOW} losses rose above its best by more than {FACTOR:g} times the loss's scale at "
               "the start: max(|first loss|, descent so far))"),
    FAILED: "stopped by an exception; its message is kept and the run is retried on the next invocation",
}


def meets(value: float, target: float, higher_is_better: bool) -> bool:
    """Whether one metric value meets the target (NaN never does)."""
    if value != value:
        return False
    return value >= target if higher_is_better else value <= target


def time_to_target(evals: Sequence[Sequence[float]], target: float, higher_is_better: bool,
                   completed: bool = True) -> tuple[float, float]:
    """``(step, training seconds)`` from which the target held to the end, else ``(inf, inf)``.

    ``evals`` are ``(step, seconds, value)``; ``completed=False`` (a run that diverged or
    failed) never reaches anything, whatever it met before it stopped.
    """
    if not completed or not evals:
        return math.inf, math.inf
    held = None
    for step, seconds, value in reversed(list(evals)):
        if not meets(value, target, higher_is_better):
            break
        held = (float(step), float(seconds))
    return held if held is not None else (math.inf, math.inf)


def outcome(status: str, evals: Sequence[Sequence[float]], target: float, higher_is_better: bool) -> str:
    """One of :data:`OUTCOMES` from a record's status and evaluations."""
    if status == DIVERGED:
        return DIVERGED
    if status == FAILED:
        return FAILED
    steps, _ = time_to_target(evals, target, higher_is_better)
    return REACHED if math.isfinite(steps) else NOT_REACHED


class Watchdog:
    """The explosion rule, fed one training loss per step (see the module docstring).

    ``update(loss)`` returns None while the run is healthy and a sentence saying why once
    it has diverged (a non-finite loss or an explosion).
    """

    def __init__(self, window: int = WINDOW, factor: float = FACTOR) -> None:
        self.window, self.factor = window, factor
        self.recent: deque[float] = deque(maxlen=window)
        self.first: float | None = None
        self.best = math.inf

    def update(self, loss: float) -> str | None:
        if not math.isfinite(loss):
            return f"the training loss is {loss}"
        if self.first is None:
            self.first = loss
        self.recent.append(loss)
        smooth = median(self.recent)
        self.best = min(self.best, smooth)
        scale = max(abs(self.first), self.first - self.best)
        rise = smooth - self.best
        # judged on a full window only: early on, one noisy batch would be half the median
        if len(self.recent) == self.window and scale > 0 and rise > self.factor * scale:
            return (f"the training loss exploded: the median of the last {len(self.recent)} losses is {smooth:.3g}, "
                    f"{rise:.3g} above its best {self.best:.3g}, more than {self.factor:g} x the start scale {scale:.3g}")
        return None
