"""A traced rule, ready for code generation: the graph every fused kernel is written from.

:func:`trace` runs an optimizer's ``rule(group)`` on symbolic values
(:mod:`inertia.rules.expr`) and returns a :class:`RuleGraph`: the state slots the kernel
reads and writes, the hyperparameters it reads each step, the reductions it needs, and the
expressions of the new parameter and state, in an order a kernel can evaluate them.

Phases. A rule with reductions (LAMB's and LARS's norms) cannot update any element before
it has read all of them, so its kernel has two passes: the *reduce* pass evaluates the
arguments of every :func:`~inertia.rules.expr.norm` and sums their squares per tensor (in
float64; across shards too, see :mod:`inertia.engine`), and the *apply* pass receives the
sums and evaluates the rest. Both passes recompute what they need from the unchanged inputs,
so the result does not depend on the storage precision of the state. A rule without
reductions has one pass.

Guards. Comparing a hyperparameter with a number while tracing (``if momentum != 0``) is
answered from the group's value and recorded; :meth:`RuleGraph.holds` tells whether a
group gives the same answers, i.e. whether this graph is that group's algorithm.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from ..rules.expr import Hyper, Sym, load, step
from ..rules.transforms import Transform


class NotTraceable(Exception):
    """The rule uses something the kernels cannot express; it runs on the reference path."""


class SymbolicGroup(Mapping):
    """A parameter group whose numbers are :class:`Hyper` symbols (bools, strings, dtypes
    and None are given as they are)."""

    def __init__(self, group: Mapping[str, Any]):
        self._group = group
        self.guards: list = []
        self.hypers: dict[str, Hyper] = {}

    def _hyper(self, name: str, value: Any) -> Hyper:
        if name not in self.hypers:
            self.hypers[name] = Hyper(name, value, self.guards)
        return self.hypers[name]

    def __getitem__(self, key: str) -> Any:
        value = self._group[key]
        if isinstance(value, bool) or value is None or isinstance(value, (str, torch.dtype)):
            return value
        if isinstance(value, (int, float, Tensor)):
            return self._hyper(key, value)
        if isinstance(value, (tuple, list)) and all(
                isinstance(v, (int, float, Tensor)) and not isinstance(v, bool) for v in value):
            return tuple(self._hyper(f"{key}.{i}", v) for i, v in enumerate(value))
        return value

    def __iter__(self):
        return iter(self._group)

    def __len__(self):
        return len(self._group)


def hyper_value(group: Mapping[str, Any], name: str) -> Any:
    """The current value of hyperparameter ``name`` (``"betas.1"`` is ``group["betas"][1]``)."""
    key, _, index = name.partition(".")
    value = group[key]
    return value[int(index)] if index else value


@dataclass(eq=False)
class RuleGraph:
    """One algorithm for one group structure, as expressions over symbolic inputs."""

    slots: tuple[str, ...]              # elementwise state keys, in the kernel's slot order
    written: tuple[str, ...]            # the slots the update changes (the rest are read-only)
    hypers: tuple[str, ...]             # hyperparameters, in the order of the kernel's vector
    outputs: dict[str, Sym]             # "param" and each written slot -> its new value
    reductions: tuple[Sym, ...]         # the norm() nodes, in the reduce pass's column order
    guards: tuple                       # (hyper, op, other, answer) recorded while tracing
    inputs: dict[str, Sym] = field(default_factory=dict)  # "grad", "param", slots, "step"
    key: str = ""                       # a digest of the graph: equal graphs, equal kernels
    #: per-tensor scalar state (a 0-d float32 tensor per parameter, NAdam's ``mu_product``),
    #: after the elementwise slots in the kernel's table; the new values are computed once
    #: per tensor after the sweep (every chunk reads the old ones)
    scalars: tuple[str, ...] = ()
    scalars_written: tuple[str, ...] = ()

    @property
    def all_slots(self) -> tuple[str, ...]:
        """Every state key the kernels address: elementwise slots, then scalar ones."""
        return self.slots + self.scalars

    def holds(self, group: Mapping[str, Any]) -> bool:
        """Whether ``group`` answers every recorded guard as the traced group did."""
        for name, op, other, answer in self.guards:
            value = hyper_value(group, name)
            if isinstance(value, Tensor):
                continue  # decided when the kernel was chosen (see expr._number)
            theirs = hyper_value(group, other) if isinstance(other, str) else other
            theirs = float(theirs) if not isinstance(theirs, Tensor) else float(theirs.item())
            mine = float(value)
            result = {"lt": mine < theirs, "le": mine <= theirs, "gt": mine > theirs,
                      "ge": mine >= theirs, "eq": mine == theirs, "ne": mine != theirs}[op]
            if result != answer:
                return False
        return True

    @property
    def two_pass(self) -> bool:
        return bool(self.reductions)


def trace(rule: Callable[[Mapping[str, Any]], Transform], group: Mapping[str, Any],
          like: Tensor) -> RuleGraph:
    """Trace ``rule(group)`` for parameters like ``like`` (its shape and dtype only)."""
    sym = SymbolicGroup(group)
    transform = rule(sym)
    # a 2-element probe tells elementwise state (shaped like the parameter) from per-tensor
    # scalar state (0-d), whatever the shape of the parameters of the group
    probe = torch.empty((2,), dtype=like.dtype, device="meta")
    template = transform.init(probe)
    for key, value in template.items():
        if value.dim() != 0 and value.shape != probe.shape:
            raise NotTraceable(f"state {key!r} is neither shaped like the parameter nor a scalar")
    slots = tuple(k for k, v in template.items() if v.dim() != 0)
    scalars = tuple(k for k, v in template.items() if v.dim() == 0)
    inputs = {"grad": load("grad"), "param": load("param"), "step": step()}
    inputs.update({k: load(k) for k in slots})
    inputs.update({k: Sym("sload", (), "scalar", k) for k in scalars})
    state = {k: inputs[k] for k in slots + scalars}
    state["step"] = inputs["step"]
    try:
        update, changed = transform.update(inputs["grad"], state, inputs["param"])
    except TypeError as error:  # a truth test on a traced value, an unknown function...
        raise NotTraceable(str(error)) from error
    unknown = set(changed) - set(slots) - set(scalars)
    if unknown:
        raise NotTraceable(f"the rule changes state it does not create: {sorted(unknown)}")
    outputs = {"param": _as_sym(inputs["param"] + update)}
    for key in slots + scalars:
        if key in changed and changed[key] is not inputs[key]:
            outputs[key] = _as_sym(changed[key])
    for key in scalars:
        if key in outputs and (outputs[key].kind == "elem" or any(
                n.op == "norm" for n in _topological([outputs[key]]))):
            raise NotTraceable(f"scalar state {key!r} must be computed from scalars only")
    order = _topological(list(outputs.values()))
    reductions = tuple(n for n in order if n.op == "norm")
    for r in reductions:
        if any(n.op == "norm" for n in _topological([r.args[0]])):
            raise NotTraceable("a norm of a value that depends on another norm needs a third pass")
    used = {n.name for n in order if n.op == "hyper"}
    hypers = tuple(name for name in sym.hypers if name in used)
    graph = RuleGraph(slots=slots, written=tuple(k for k in slots if k in outputs),
                      hypers=hypers, outputs=outputs, reductions=reductions,
                      guards=tuple(sym.guards), inputs=inputs, scalars=scalars,
                      scalars_written=tuple(k for k in scalars if k in outputs))
    graph.key = _digest(graph)
    return graph


def _as_sym(x: Any) -> Sym:
    if isinstance(x, Sym):
        return x
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return Sym("const", (), "const", float(x))
    raise NotTraceable(f"the rule produced {type(x).__name__}, not a traced value")


def _topological(roots: list[Sym]) -> list[Sym]:
    """Every node the roots depend on, each once, inputs before their users."""
    seen: set[int] = set()
    out: list[Sym] = []
    stack: list[tuple[Sym, bool]] = [(r, False) for r in reversed(roots)]
    while stack:
        node, ready = stack.pop()
        if ready:
            out.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for a in reversed(node.args):
            if isinstance(a, Sym) and id(a) not in seen:
                stack.append((a, False))
    return out


def topological(graph: RuleGraph, roots: list[Sym] | None = None) -> list[Sym]:
    """The nodes of ``graph`` (or of ``roots``) in evaluation order."""
    return _topological(roots if roots is not None else list(graph.outputs.values()))



def scalar_program(graph: RuleGraph, roots: list[Sym], ops: Mapping[str, str],
                   literal: Callable[[float], str], hyper: Callable[[int], str]
                   ) -> tuple[dict[int, str], list[str]]:
    """Straight-line code computing the per-tensor scalar expressions ``roots``: each
    operation a line ``v<k> = ...`` written with the backend's ``ops`` templates. Leaves: a
    constant is the backend's ``literal``, hyperparameter ``i`` its ``hyper(i)`` (how it
    reads the hyperparameter buffer), the step ``stp`` and scalar state ``j`` ``ss<j>``
    (locals the backend's program defines). Returns the name of every node (by ``id``) and
    the lines."""
    leaves = {"const": lambda n: literal(n.name),
              "hyper": lambda n: hyper(graph.hypers.index(n.name)),
              "step": lambda n: "stp",
              "sload": lambda n: f"ss{graph.scalars.index(n.name)}"}
    names: dict[int, str] = {}
    lines: list[str] = []
    for n in topological(graph, roots):
        if n.op in leaves:
            names[id(n)] = leaves[n.op](n)
        else:
            names[id(n)] = f"v{len(names)}"
            lines.append(f"{names[id(n)]} = {ops[n.op].format(*[names[id(a)] for a in n.args])}")
    return names, lines


def _digest(graph: RuleGraph) -> str:
    """A name for the graph's structure: equal digests compute the same thing."""
    order = topological(graph)
    index = {id(n): i for i, n in enumerate(order)}
    lines = [f"slots {graph.slots} written {graph.written} hypers {graph.hypers} "
             f"scalars {graph.scalars} {graph.scalars_written}"]
    for n in order:
        args = ",".join(f"%{index[id(a)]}" for a in n.args)
        name = repr(n.name) if not (isinstance(n.name, float) and math.isnan(n.name)) else "nan"
        lines.append(f"%{index[id(n)]}={n.op}[{n.kind}]({args}){name}")
    lines.append("out " + ",".join(f"{k}=%{index[id(v)]}" for k, v in graph.outputs.items()))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
