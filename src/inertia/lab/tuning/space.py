"""The search space: which hyperparameters a tuning study draws, from what ranges, in what order.

Every optimizer gets the same *relative* space, so no optimizer is favoured by its range:

* **lr**, always: log-uniform over ``[centre / 30, centre x 30]``, where the centre is the
  entry's own lr when it types one, else the optimizer's library default (for an optimizer
  without one, LARS, the workload's hand-picked lr). A range 900x wide covers the usual
  spread of good learning rates around a default; when the best trial of the first phase
  lies at an edge of what was tried, the second phase searches beyond that edge (another
  factor 30, :func:`widened`; the edge rule is :func:`inertia.lab.scoring.tuning.edge_of`).
* **other knobs, when asked** (``tune_also=("momentum", "weight_decay")``): each of
  :data:`KNOBS`, for the optimizers that have that hyperparameter. Momenta are drawn as
  ``1 - m`` log-uniform, so 0.9, 0.99 and 0.999 are as far apart as they behave.

The draws are **quasirandom**: a scrambled Sobol sequence (``scipy.stats.qmc``) with a
fixed seed, in log coordinates, the same points for every optimizer. So two optimizers see
the same relative offsets from their centres, and any prefix of the sequence is spread out.
Slot 0 of every study is the centre itself with every other knob at its default: the
run an untuned user gets, measured on the same footing as the tuned ones.

Everything here is plain arithmetic on :class:`Space` objects (JSON-able with
:meth:`Space.to_dict`), so it is tested without training anything.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

#: the lr range around its centre: [centre / WIDTH, centre * WIDTH]
WIDTH = 30.0
#: a widened phase searches this much further beyond the edge where the best trial was
WIDEN = 30.0
#: the Sobol sequence's scrambling seed (the same for every study: common points)
QMC_SEED = 0


@dataclass(frozen=True)
class Knob:
    """How one hyperparameter is drawn: log-uniform ``u`` in ``[low, high]``, then ``value = f(u)``."""

    name: str  # the Optuna parameter (e.g. "1-momentum")
    hparam: str  # the constructor argument it sets ("momentum"; "betas" for beta1/beta2)
    low: float
    high: float
    kind: str = "value"  # "value": u itself; "one-minus": 1 - u; "beta1"/"beta2": one element of betas
    help: str = ""


#: knobs a study may tune besides lr (``tune_also``), with their fixed ranges
KNOBS: dict[str, Knob] = {
    "momentum": Knob("1-momentum", "momentum", 1e-3, 0.5, "one-minus", "momentum in [0.5, 0.999], as 1 - m log-uniform"),
    "beta1": Knob("1-beta1", "betas", 1e-3, 0.5, "beta1", "betas[0] in [0.5, 0.999], as 1 - b1 log-uniform"),
    "beta2": Knob("1-beta2", "betas", 1e-4, 0.1, "beta2", "betas[1] in [0.9, 0.9999], as 1 - b2 log-uniform"),
    "weight_decay": Knob("weight_decay", "weight_decay", 1e-5, 0.1, "value", "weight_decay log-uniform in [1e-5, 0.1]"),
    "eps": Knob("eps", "eps", 1e-10, 1e-4, "value", "eps log-uniform in [1e-10, 1e-4]"),
}


@dataclass(frozen=True)
class Space:
    """A study's space: the lr range (and its centre) plus the extra knobs, in Sobol order."""

    centre: float
    low: float
    high: float
    knobs: tuple[Knob, ...] = ()
    centre_from: str = "default"  # "entry", "default" (library) or "workload"
    widened: str = ""  # "", "down" or "up": the phase searched beyond an edge of the first

    @property
    def dims(self) -> int:
        return 1 + len(self.knobs)

    def to_dict(self) -> dict[str, Any]:
        return {"centre": self.centre, "low": self.low, "high": self.high, "centre_from": self.centre_from,
                "widened": self.widened, "knobs": [k.name for k in self.knobs]}


def centred(centre: float, knobs: Sequence[Knob] = (), centre_from: str = "default") -> Space:
    """The first phase's space: ``[centre / 30, centre x 30]``."""
    if not (isinstance(centre, (int, float)) and math.isfinite(centre) and centre > 0):
        raise ValueError(f"Invalid centre: {centre!r} (a learning rate must be a positive number)")
    return Space(float(centre), centre / WIDTH, centre * WIDTH, tuple(knobs), centre_from)


def knobs_for(names: Sequence[str], hyperparameters: Mapping[str, Any]) -> tuple[Knob, ...]:
    """The knobs of ``names`` that this optimizer has (``betas`` for beta1/beta2), in a fixed order."""
    unknown = [n for n in names if n not in KNOBS and n != "lr"]
    if unknown:
        raise ValueError(f"Invalid tune_also: {unknown[0]!r} (choose from {', '.join(KNOBS)})")
    out = []
    for name, knob in KNOBS.items():
        if name in names and knob.hparam in hyperparameters:
            default = hyperparameters[knob.hparam]
            if knob.hparam == "betas" and not (isinstance(default, tuple) and len(default) == 2):
                continue
            out.append(knob)
    return tuple(out)


def sobol(n: int, dims: int, seed: int = QMC_SEED) -> list[list[float]]:
    """The first ``n`` points of a scrambled Sobol sequence in ``[0, 1)^dims`` (deterministic)."""
    from scipy.stats import qmc

    if n <= 0:
        return []
    m = max(0, math.ceil(math.log2(n)))
    return qmc.Sobol(d=dims, scramble=True, seed=seed).random_base2(m)[:n].tolist()


def _log_map(u: float, low: float, high: float) -> float:
    return float(math.exp(math.log(low) + u * (math.log(high) - math.log(low))))


def point(space: Space, u: Sequence[float]) -> dict[str, float]:
    """A unit point as Optuna parameters: ``{"lr": ..., "1-momentum": ...}``."""
    out = {"lr": _log_map(u[0], space.low, space.high)}
    for knob, x in zip(space.knobs, u[1:]):
        out[knob.name] = _log_map(x, knob.low, knob.high)
    return out


def to_hparams(params: Mapping[str, float], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Optuna parameters as constructor arguments: ``{"1-momentum": 0.1}`` -> ``{"momentum": 0.9}``.

    ``defaults`` are the values the entry would otherwise use (for the element of ``betas``
    that is not tuned).
    """
    hp: dict[str, Any] = {}
    for name, value in params.items():
        if name == "lr":
            hp["lr"] = float(value)
            continue
        knob = next(k for k in KNOBS.values() if k.name == name)
        if knob.kind == "one-minus":
            hp[knob.hparam] = 1.0 - value
        elif knob.kind in ("beta1", "beta2"):
            b1, b2 = hp.get("betas", tuple(defaults["betas"]))
            hp["betas"] = (1.0 - value, b2) if knob.kind == "beta1" else (b1, 1.0 - value)
        else:
            hp[knob.hparam] = float(value)
    return hp


def widened(space: Space, edge: str, extension_only: bool = True) -> Space:
    """The second phase's space: beyond ``edge`` by another factor :data:`WIDEN`, else the same.

    ``extension_only``: only the new part (quasirandom points there cover new ground);
    False: the whole widened range (for a model-based sampler that uses every trial).
    """
    if edge == "down":
        return Space(space.centre, space.low / WIDEN, space.high if not extension_only else space.low,
                     space.knobs, space.centre_from, "down")
    if edge == "up":
        return Space(space.centre, space.low if not extension_only else space.high, space.high * WIDEN,
                     space.knobs, space.centre_from, "up")
    return space


@dataclass(frozen=True)
class Phases:
    """How a study's ``trials`` slots are split: slot 0 the centre, the first phase, the second."""

    trials: int
    first: int = field(init=False)

    def __post_init__(self) -> None:
        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or self.trials < 1:
            raise ValueError(f"Invalid trials: {self.trials!r} (must be a positive integer)")
        # two thirds explore the centred range; the rest go beyond an edge, or refine it
        object.__setattr__(self, "first", self.trials if self.trials < 3 else math.ceil(2 * self.trials / 3))

    def phase(self, slot: int) -> int:
        return 1 if slot < self.first else 2
