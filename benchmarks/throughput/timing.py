"""The timing method: every contender once per round, for a block of steps, in an order
rotated each round (see ``step_throughput.py``'s docstring); the load average of a section;
the machine and the peers' versions for the results' header."""
from __future__ import annotations

import contextlib
import gc
import importlib.metadata
import os
import platform
import statistics
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

Step = Callable[[], Any]          # one step; may return the seconds of its timed part
Builder = Callable[[], Step]      # makes a contender's tensors and returns its step


@dataclass
class Timings:
    """Seconds per step of each contender, one sample per round: on a CPU the median of the
    block's step times (each step timed alone), on a GPU the block's time over its steps.
    ``mean`` keeps every block's mean (stalls included); ``inner`` the part a contender's
    step timed itself (the optimizer step of a training iteration)."""

    samples: dict[str, list[float]]
    mean: dict[str, list[float]]
    inner: dict[str, list[float]]
    steps_per_block: dict[str, int]
    skipped: dict[str, str] = field(default_factory=dict)

    def median(self, name: str, inner: bool = False) -> float:
        return statistics.median((self.inner if inner else self.samples)[name])

    def ratio(self, a: str, b: str, inner: bool = False) -> tuple[float, float, float]:
        """time(a) / time(b): ratio of the medians, and the quartiles of per-round ratios."""
        xs = self.inner if inner else self.samples
        per_round = [x / y for x, y in zip(xs[a], xs[b])]
        q1, q3 = quartiles(per_round)
        return statistics.median(xs[a]) / statistics.median(xs[b]), q1, q3


def quartiles(xs: list[float]) -> tuple[float, float]:
    if len(xs) < 4:
        return min(xs), max(xs)
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]


def sync_for(device) -> Callable[[], None]:
    if torch.device(device).type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def interleaved(builders: dict[str, Builder], rounds: int, block_s: float, device,
                warmup: int = 4, max_block: int = 500) -> Timings:
    """Time every contender once per round, in an order rotated each round (see
    ``step_throughput.py``'s docstring). A contender that fails to build or step is
    reported as skipped.

    On a CPU every step is timed alone and a round's sample is the median of its block:
    on a machine shared with other jobs, a thread of a parallel region that loses its core
    can stall one step for milliseconds to a second, whichever optimizer it is (the block's
    mean, stalls included, is kept in ``mean``). On a GPU a block is timed between two
    synchronisations, so that launches overlap as they do in training."""
    sync = sync_for(device)
    per_step = torch.device(device).type == "cpu"
    steps: dict[str, Step] = {}
    skipped: dict[str, str] = {}
    per_block = {}
    for name, build in builders.items():
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", module="heavyball")
                step = build()
                times = []
                for _ in range(warmup):  # the first compiles, plans, makes state
                    t = time.perf_counter()
                    step()
                    sync()
                    times.append(time.perf_counter() - t)
            steps[name] = step
            # blocks of about block_s seconds, from the fastest warm-up step after the first
            fastest = max(min(times[1:] or times), 1e-7)
            per_block[name] = max(1, min(max_block, round(block_s / fastest)))
        except Exception as error:  # a peer that cannot run here: say so, go on
            skipped[name] = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
            print(f"    {name}: skipped ({skipped[name]})", flush=True)
    names = list(steps)
    samples: dict[str, list[float]] = {n: [] for n in names}
    mean: dict[str, list[float]] = {n: [] for n in names}
    inner: dict[str, list[float]] = {n: [] for n in names}
    clock = time.perf_counter
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            k = r % len(names) if names else 0
            for name in names[k:] + names[:k]:
                step, count = steps[name], per_block[name]
                times, parts = [], []
                sync()
                start = clock()
                for _ in range(count):
                    t = clock() if per_step else 0.0
                    got = step()
                    if per_step:
                        times.append(clock() - t)
                    parts.append(got if isinstance(got, float) else 0.0)
                sync()
                mean[name].append((clock() - start) / count)
                samples[name].append(statistics.median(times) if per_step else mean[name][-1])
                inner[name].append(statistics.median(parts))
    finally:
        if gc_was_enabled:
            gc.enable()
    del steps
    gc.collect()
    return Timings(samples, mean, inner, per_block, skipped)


def load() -> tuple[float, float, float]:
    return os.getloadavg()


@contextlib.contextmanager
def section(report: dict, name: str):
    """Record the load average before and after a section, and its duration."""
    before, t = load(), time.perf_counter()
    print(f"\n== {name} (load {before[0]:.2f} {before[1]:.2f} {before[2]:.2f})", flush=True)
    yield
    after = load()
    report.setdefault("load", {})[name] = {"before": before, "after": after,
                                           "seconds": time.perf_counter() - t}
    print(f"   {name}: {time.perf_counter() - t:.0f} s, load after {after[0]:.2f}", flush=True)


def path_counts() -> Counter:
    """How often each step path ran (the engine counts them, so a fallback is visible)."""
    from inertia.engine.step import path_counts as counts

    return Counter(counts)


def inverse(r: tuple[float, float, float]) -> tuple[float, float, float]:
    """A time ratio turned into a speed ratio (quartiles swap)."""
    return 1 / r[0], 1 / r[2], 1 / r[1]


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores"


def versions() -> str:
    out = []
    for pkg in ("numba", "pytorch_optimizer", "heavyball", "optax", "jax", "schedulefree"):
        try:
            out.append(f"{pkg} {importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{pkg} not installed")
    return ", ".join(out) + " (timm: not installed, it needs torchvision, which has no wheel " \
        "for this torch)"


def load_text() -> str:
    a, b, c = load()
    return f"{a:.2f}/{b:.2f}/{c:.2f}"
