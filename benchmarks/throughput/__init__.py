"""The pieces of ``benchmarks/step_throughput.py`` (the command line stays there).

* ``timing``: the timing method (interleaved rounds, ``Timings``, quartiles, ratios), the
  load average of a section, the machine and version strings;
* ``problems``: the problems (transformer-shaped parameters, bandwidth probes), the bytes
  per parameter at the memory floor and inertia's contenders of the main table;
* ``peers``: the other libraries' steps (torch.optim, pytorch_optimizer, heavyball, optax);
* ``scenarios``: the sections that time the main optimizers (main table, small model,
  training loop, clipping, first step, the Python-threads child process);
* ``modern``: the section of the newer optimizers (Muon, Adafactor, Schedule-Free, NAdam,
  RAdam, Adamax, Adadelta) in float32 and bfloat16, and their state bytes;
* ``report`` and ``markdown``: the JSON round trip, the Markdown tables and the chart.

The scripts of ``benchmarks/`` put their own folder on ``sys.path`` and import from here.
"""
from __future__ import annotations

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent
RESULTS = BENCHMARKS / "results"
SCRIPT = BENCHMARKS / "step_throughput.py"
