"""The pieces of ``benchmarks/memory.py`` (the command line stays there).

* ``report``: the results' header (machine, versions, load average) and the writing of
  ``benchmarks/results/memory_<section>.md`` and ``.json``;
* ``problems``: the state policies and the peers' 8-bit optimizers, the bytes of an
  optimizer's state, and the measured models (transformer-shaped tensors, MiniLM-L6);
* ``codes``: the 8-bit codes against float32 moments (the error of Adam's step);
* ``bytes``: the state bytes per parameter, and the peak memory of a training run (one
  fresh process per optimizer, ``memory.py _peak NAME``);
* ``speed``: the step time against torch fused AdamW and the peers;
* ``quality``: the held-out quality of each state policy (the lab's runs, lr tuned);
* ``rounding``: pure-bfloat16 training, rounding to nearest against stochastic (and its
  chart ``memory_rounding.png``).

``memory.py`` puts its own folder on ``sys.path`` and imports from here.
"""
from __future__ import annotations

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent
RESULTS = BENCHMARKS / "results"
SCRIPT = BENCHMARKS / "memory.py"
