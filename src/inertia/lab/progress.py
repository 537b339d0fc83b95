"""Progress while a comparison trains: one tqdm bar over its runs, on stderr.

The bar counts runs (those found in the database count as done from the start), shows
the elapsed time and tqdm's estimate of what is left, and names the run in progress (with
its step and loss when it trains in this process) or the last one that finished::

    runs:  42%|████▏     | 10/24 [00:31<00:43, valley sgd seed 2: 120/150 steps, loss 0.0412]

It appears only when stderr is a terminal and ``quiet`` is off, so logs and pipes stay
clean; tqdm does the drawing, the rate and the estimate.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm.auto import tqdm


class Progress:
    """A bar over ``total`` runs, ``skipped`` of them already done. Use as a context manager."""

    def __init__(self, total: int, skipped: int = 0, quiet: bool = False, stream: TextIO | None = None,
                 force: bool = False, unit: str = "run") -> None:
        stream = stream or sys.stderr
        enabled = force or (not quiet and hasattr(stream, "isatty") and stream.isatty())
        self.bar = tqdm(total=total, initial=skipped, unit=unit, desc=f"{unit}s", file=stream, disable=not enabled,
                        dynamic_ncols=True, smoothing=0.1, leave=False, mininterval=0.2,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                   "[{elapsed}<{remaining}{postfix}]")
        self.current = ""
        self.steps = 0
        self._last = 0.0

    def start(self, description: str, steps: int) -> None:
        """A run starts training in this process."""
        self.current, self.steps = description, steps
        self.bar.set_postfix_str(description, refresh=False)

    def step(self, step: int, loss: float) -> None:
        """A step of the run in progress (drawn at most 5 times a second)."""
        now = time.monotonic()
        if now - self._last >= 0.2 or step == self.steps:
            self._last = now
            self.bar.set_postfix_str(f"{self.current}: {step}/{self.steps} steps, loss {loss:.4g}")

    def done(self, description: str, status: str) -> None:
        """A run finished (here or in a worker process)."""
        self.bar.set_postfix_str(f"{description}: {status}", refresh=False)
        self.bar.update(1)
        self.bar.refresh()  # a finished run is news even within tqdm's redraw interval

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
