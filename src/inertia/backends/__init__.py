"""The backends: how a traced rule becomes a fused kernel, and the reference path.

* :mod:`.graph`: a rule traced into an expression graph (phases, slots, hyperparameters);
* :mod:`.numba_cpu` and :mod:`.triton_gpu`: kernels written from that graph, for the CPU
  (numba) and CUDA (Triton);
* :mod:`.ops`: the fused step as torch operators (``torch.compile``, CUDA graphs);
* :mod:`.native` / :mod:`.cpu`: the CPU implementations of those operators (C++ in
  torch's thread pool, or Python threads);
* :mod:`.reference`: the rule applied with torch ops, the definition kernels are tested
  against.

Backends import the rules (:mod:`inertia.rules`), never the engine or the optimizers.
"""
