"""What one run leaves behind: :class:`RunRecord`, plain data with no torch in it.

The runner (:mod:`inertia.lab.running`) fills a record while it trains; the store
(:mod:`inertia.lab.store`) writes and reads it; scoring and reporting read it and nothing
else. Keeping the record free of torch is what lets scoring and reporting work from a
database alone, on a machine that never trained anything.

A record says how training *ended* (:attr:`RunRecord.status`):

* ``"completed"``: the full step budget ran;
* ``"diverged"``: training stopped because the loss, the metric or the parameters became
  non-finite, the loss exploded (:mod:`inertia.lab.outcomes`), or the optimizer raised
  :class:`inertia.NonFiniteGradientError`;
* ``"failed"``: an exception stopped it; :attr:`RunRecord.error` keeps its message.

Whether a completed run *reached* its target is a question for scoring
(:func:`inertia.lab.outcomes.outcome`), answered from the stored evaluations.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

COMPLETED, DIVERGED, FAILED = "completed", "diverged", "failed"
STATUSES = (COMPLETED, DIVERGED, FAILED)
#: a tuning trial stopped early by its pruner (:mod:`inertia.lab.tuning`); never a stored run
PRUNED = "pruned"

#: where an entry's learning rate came from (shown next to every lr in a report)
LR_SOURCES = {
    "tuned": "chosen by the lab's equal-budget tuning, on the validation split",
    "entry": "set in the entry",
    "workload": "hand-picked for this workload, not tuned by the lab",
    "default": "the optimizer's library default, untuned",
}


@dataclass
class RunRecord:
    """Everything one (workload, optimizer entry, seed) run produced.

    Per-step lists have index 0 = step 1. ``evals`` holds ``(step, training seconds,
    validation metric)`` at step 0, every ``eval_every`` steps and at the end; the test
    split is measured once, at the end of a run that did not diverge or fail
    (``test_metric``), so no choice made from the curves ever looks at it.
    """

    key: str
    workload: str
    label: str
    optimizer: str
    seed: int
    workload_config: dict[str, Any]
    spec: dict[str, Any]
    hparams: dict[str, Any] = field(default_factory=dict)  # every constructor hyperparameter, defaults included
    lr: float | None = None  # the initial learning rate
    lr_source: str = "entry"  # a key of LR_SOURCES
    schedule: str | None = None
    batch_size: int | None = None
    status: str = COMPLETED
    error: str | None = None  # why it diverged or failed
    steps: int = 0  # the budget
    steps_done: int = 0
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # cumulative training seconds after each step
    evals: list[tuple[int, float, float]] = field(default_factory=list)  # (step, train seconds, validation metric)
    test_metric: float | None = None
    trajectory: list[list[float]] | None = None  # 2-D workloads: the point before each step and at the end
    wall_time: float = 0.0  # seconds from the start of the run to its end, evaluations included
    train_time: float = 0.0  # seconds inside training steps only
    time_per_step: float = 0.0
    state_bytes: int = 0  # memory of the optimizer's state tensors at the end
    peak_memory: int = 0
    peak_memory_kind: str = ""
    skipped_steps: int = 0  # steps the optimizer itself skipped (a non-finite gradient guard)
    device: str = ""
    threads: int = 0  # torch intra-op threads during the run
    concurrency: int = 1  # runs training on this machine at the same time (1: measured alone)
    load: list[float] = field(default_factory=list)  # 1-minute load average at the start and the end
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunRecord":
        data = dict(data)
        data["evals"] = [tuple(e) for e in data.get("evals") or []]
        return cls(**data)
