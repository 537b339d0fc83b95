"""Optimizer entries and workload names: their text form, parsed strictly.

The CLI (and :func:`inertia.lab.compare`, which accepts the same strings) writes an
optimizer entry as::

    NAME[:KEY=VALUE,KEY=VALUE...][;schedule=SCHEDULE][;batch=N][;label=TEXT][;tune=no]

    adam                                  the workload's lr for adam (or the library default)
    adam:lr=1e-3,betas=(0.9,0.99)         values are Python literals; commas inside () are fine
    sgd:lr=0.1,momentum=0.9;schedule=cosine
    sgd:lr=0.5;batch=1;label=stochastic   batch size, for workloads that have one (minibatch)
    adam:lr=1e-3;tune=no;label=adam-default   run as given even when the comparison tunes
    torch.optim.AdamW:lr=3e-4,weight_decay=0.1   a peer: any optimizer class by import path

A ``NAME`` with a dot in it is the import path of an optimizer class (``torch.optim.AdamW``,
``heavyball.ForeachAdamW``, ``mypkg.optim.MyOptimizer``): the lab imports it, reads its
hyperparameters and their defaults from its constructor, and runs it beside inertia's own
optimizers, so a report compares inertia with what you use today. The Python API also takes
the class itself, or a ``(class, {"lr": 3e-4})`` pair (:func:`inertia.lab.api.resolve_entry`).

A schedule is ``NAME[(KEY=VALUE,...)]``, joined by ``+`` to run one after another:
``cosine``, ``cosine(lr_min=1e-4)``, ``exponential(k=0.01)``, ``inverse_time(k=0.01)``,
``step(every=100,factor=0.5)``, ``warmup(steps=50)+cosine``, ``constant``. Every schedule
starts from the entry's ``lr``; ``cosine`` decays over the rest of the step budget unless
given ``T=``; a part that is not last needs a length (``warmup`` uses its ``steps``, the
others take ``len=``). Schedules count optimizer steps.

A workload is ``NAME[:KEY=VALUE,...]``, e.g. ``valley-noisy:noise=0.5`` or ``mnist-cnn:channels=8``.

Nothing is guessed: an empty value (``adam:lr=``), a value of the wrong type
(``adam:lr=abc``), an unknown key, a repeated key or field, and an unclosed bracket
(``betas=(0.9,0.99``, ``schedule=cosine(``) are errors, and every message has one form,
naming the entry and the field::

    Invalid entry 'adam:lr=abc': lr must be a number, got 'abc'

This module parses and checks; :mod:`inertia.lab.running.build` constructs.
"""
from __future__ import annotations

import ast
import functools
import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

SCHEDULES = ("constant", "cosine", "exponential", "inverse_time", "step", "warmup")
FIELDS = ("schedule", "batch", "label", "tune")


class SpecError(ValueError):
    """A malformed entry, an unknown name or an invalid hyperparameter (the message says which)."""


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer entry of a comparison: a name, hyperparameters, an optional schedule.

    ``name`` is an inertia optimizer name (``adam``, ``sgd`` …, see ``inertia optimizers``);
    ``label`` is how the report shows it (defaults to the name and its hyperparameters);
    ``schedule`` is a schedule text (``cosine``, ``warmup(steps=50)+cosine`` …) or None;
    ``batch_size`` overrides the workload's batch size for workloads that have one.
    Parse the text form with :func:`parse_optimizer`.
    """

    name: str
    hparams: Mapping[str, Any] = field(default_factory=dict)
    schedule: str | None = None
    label: str | None = None
    batch_size: int | None = None
    text: str | None = field(default=None, compare=False)  # the text it was parsed from, for messages
    #: the optimizer class itself, when given as a class (it may not be importable by name,
    #: e.g. defined in a script); None: found from ``name``
    cls: type | None = field(default=None, compare=False, repr=False)
    #: the key of the tuning study that chose this entry's hyperparameters (None: not tuned)
    tuned: str | None = None
    #: run as given even when the comparison tunes (``;tune=no``): e.g. the untuned default beside the tuned one
    fixed: bool = field(default=False, compare=False)

    @property
    def display(self) -> str:
        """The entry's name in reports: its label, else the name and what the entry sets."""
        if self.label:
            return self.label
        parts = [f"{k}={v}" for k, v in sorted(self.hparams.items())]
        if self.schedule:
            parts.append(f"schedule={self.schedule}")
        if self.batch_size:
            parts.append(f"batch={self.batch_size}")
        return f"{self.name}({','.join(parts)})" if parts else self.name

    @property
    def source(self) -> str:
        """How an error message quotes this entry."""
        return self.text if self.text is not None else self.display

    @property
    def is_peer(self) -> bool:
        """Whether the entry names an optimizer class by import path instead of an inertia name."""
        return is_import_path(self.name)

    def config(self) -> dict[str, Any]:
        """The entry as JSON-able data (its identity in the results database)."""
        out = {"name": self.name, "hparams": jsonable(dict(sorted(self.hparams.items()))),
               "schedule": self.schedule, "batch_size": self.batch_size}
        if self.tuned is not None:  # a tuned entry is its own run, even at an lr typed before
            out["tuned"] = self.tuned
        return out


def jsonable(value: Any) -> Any:
    """Tuples, tensors, dtypes and numpy scalars as plain JSON values (recursively)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "tolist"):  # tensors and numpy values
        return jsonable(value.tolist())
    if hasattr(value, "item"):
        return value.item()
    return str(value)  # torch.bfloat16 -> "torch.bfloat16"


def fail(text: str, problem: str, what: str = "entry") -> SpecError:
    """The one message form for bad input: ``Invalid entry 'TEXT': PROBLEM``."""
    return SpecError(f"Invalid {what} {text!r}: {problem}")


# ---------------------------------------------------------------------------- syntax

def split_top(text: str, sep: str, whole: str, what: str = "entry") -> list[str]:
    """Split at ``sep`` outside brackets; an unclosed or unopened bracket is an error."""
    parts, cur, opened = [], [], []  # opened: (bracket, start of the field it is in)
    pairs = {")": "(", "]": "[", "}": "{"}
    field_start = 0  # where the current KEY=VALUE (or field) begins, for messages
    for i, ch in enumerate(text):
        if ch in "([{":
            opened.append((ch, field_start))
        elif ch in pairs:
            if not opened or opened[-1][0] != pairs[ch]:
                raise fail(whole, f"unmatched {ch!r} in {text[field_start:i + 1].strip()!r}", what)
            opened.pop()
        if not opened and ch in ",;:+":
            field_start = i + 1
        if ch == sep and not opened:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if opened:
        bracket, start = opened[0]
        raise fail(whole, f"unclosed {bracket!r} in {text[start:].strip()!r}", what)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def parse_value(text: str) -> Any:
    """A Python literal (``0.1``, ``(0.9, 0.99)``, ``True``), else a bare word as a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        low = text.lower()
        if low in ("true", "false"):
            return low == "true"
        if low == "none":
            return None
        return text  # bare words stay strings (nonfinite=skip); types are checked against the optimizer


def parse_kv(text: str, whole: str, what: str = "entry", context: str = "") -> dict[str, Any]:
    """``"lr=0.1,betas=(0.9,0.99)"`` -> ``{"lr": 0.1, "betas": (0.9, 0.99)}``, strictly."""
    out: dict[str, Any] = {}
    where = f" in {context}" if context else ""
    for part in split_top(text, ",", whole, what):
        key, eq, val = (s.strip() for s in part.partition("="))
        if not part:
            raise fail(whole, f"an empty KEY=VALUE{where} (a stray comma?)", what)
        if not eq:
            raise fail(whole, f"{part!r}{where} is not KEY=VALUE", what)
        if not _WORD.match(key):
            raise fail(whole, f"{key!r}{where} is not a valid key", what)
        if not val:
            raise fail(whole, f"{key}{where} has no value", what)
        if key in out:
            raise fail(whole, f"{key}{where} is given twice", what)
        out[key] = parse_value(val)
    return out


def parse_schedule(text: str, whole: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """``"warmup(steps=50)+cosine"`` -> ``[("warmup", {"steps": 50}), ("cosine", {})]``."""
    whole = text if whole is None else whole
    parts = split_top(text, "+", whole)
    out = []
    for part in parts:
        m = re.fullmatch(r"([A-Za-z_]\w*)\s*(?:\((.*)\))?", part, re.S)
        if not part or m is None:
            raise fail(whole, f"schedule part {part!r} is not NAME or NAME(KEY=VALUE,...)")
        name = m[1].lower()
        if name not in SCHEDULES:
            raise fail(whole, f"unknown schedule {name!r}; valid names: {', '.join(SCHEDULES)}")
        args = m[2]
        if args is not None and not args.strip():
            out.append((name, {}))
            continue
        out.append((name, parse_kv(args, whole, context=f"schedule {name}") if args else {}))
    return out


def parse_optimizer(text: str) -> OptimizerSpec:
    """Parse an optimizer entry (see the module docstring for the syntax) and check it.

    Raises :class:`SpecError` naming the entry and the field for any malformed part, an
    unknown optimizer, an unknown or mistyped hyperparameter; the values themselves
    (a negative lr) are checked when the optimizer is built.
    """
    if not isinstance(text, str):
        raise SpecError(f"Invalid entry {text!r}: expected text such as 'adam:lr=1e-3'")
    head, *fields = split_top(text, ";", text)
    name, colon, args = head.partition(":")
    name = name.strip()
    if not name:
        raise fail(text, "no optimizer name")
    if is_import_path(name):
        import_class(name, text)  # fails here, naming the entry, when it cannot be imported
    else:
        name = name.lower()
        names = optimizer_names()
        if name not in names:
            raise fail(text, f"unknown optimizer {name!r}; valid names: {', '.join(names)} "
                             "(or an optimizer class by import path, such as torch.optim.AdamW)")
    if colon and not args.strip():
        raise fail(text, f"nothing after '{name}:' (expected KEY=VALUE,...)")
    hparams = parse_kv(args, text) if args.strip() else {}
    extra: dict[str, str] = {}
    for f in fields:
        key, eq, val = (s.strip() for s in f.partition("="))
        key = key.lower()
        if not f:
            raise fail(text, "an empty field (a stray ';'?)")
        if not eq or key not in FIELDS:
            raise fail(text, f"unknown field {f!r} (expected schedule=, batch=, label= or tune=)")
        if not val:
            raise fail(text, f"{key} has no value")
        if key in extra:
            raise fail(text, f"{key} is given twice")
        extra[key] = val
    batch = None
    if "batch" in extra:
        try:
            batch = int(extra["batch"])
        except ValueError:
            batch = -1
        if batch <= 0:
            raise fail(text, f"batch must be a positive integer, got {extra['batch']!r}")
    if "schedule" in extra:
        parse_schedule(extra["schedule"], text)
    if extra.get("tune", "yes").lower() not in ("yes", "no"):
        raise fail(text, f"tune must be yes or no, got {extra['tune']!r}")
    spec = OptimizerSpec(name, hparams, schedule=extra.get("schedule"), label=extra.get("label"),
                         batch_size=batch, text=text, fixed=extra.get("tune", "yes").lower() == "no")
    check_hparams(spec)
    return spec


def parse_workload(text: str) -> tuple[str, dict[str, Any]]:
    """``"valley-noisy:noise=0.5"`` -> ``("valley-noisy", {"noise": 0.5})``; an import path keeps
    its function: ``"mypkg.mod:make_workload:hidden=64"`` -> ``("mypkg.mod:make_workload", {"hidden": 64})``."""
    head, colon, rest = text.partition(":")
    func, colon2, args2 = rest.partition(":")
    if colon and func.strip().isidentifier() and "=" not in func:
        name, colon, args = f"{head.strip()}:{func.strip()}", colon2, args2
    else:
        name, colon, args = head, colon, rest
    if colon and not args.strip():
        raise fail(text, f"nothing after '{name.strip()}:' (expected OPTION=VALUE,...)", "workload")
    return name.strip(), (parse_kv(args, text, "workload") if args.strip() else {})


# ---------------------------------------------------------------------------- names and types

def optimizer_classes() -> dict[str, type]:
    """inertia's optimizers by name, from :data:`inertia.optim.registry.REGISTRY`."""
    from ..optim.registry import REGISTRY

    return {name: info.cls for name, info in REGISTRY.items()}


def optimizer_names() -> list[str]:
    return list(optimizer_classes())


def is_import_path(name: str) -> bool:
    """``torch.optim.AdamW`` is an import path; ``adam`` is an inertia name."""
    return "." in name


def class_path(cls: type) -> str:
    """The import path of a class: ``torch.optim.adamw.AdamW``."""
    return f"{cls.__module__}.{cls.__qualname__}"


def import_class(path: str, whole: str | None = None) -> type:
    """The optimizer class at an import path such as ``torch.optim.AdamW``, or a :class:`SpecError`.

    The longest importable module prefix is imported and the rest is looked up as
    attributes, so ``pkg.module.Class`` and ``pkg.Class`` (re-exported) both work. The class
    must be a ``torch.optim.Optimizer`` (what the lab drives: ``zero_grad``, ``step``,
    ``param_groups``, ``state_dict``).
    """
    import importlib

    import torch

    whole = path if whole is None else whole
    parts = path.split(".")
    if not all(p.isidentifier() for p in parts):
        raise fail(whole, f"{path!r} is not an import path such as torch.optim.AdamW")
    obj, problem = None, ""
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module_name.startswith(exc.name):
                problem = f"no module named {exc.name!r}"
                continue  # a shorter prefix may be the module
            raise fail(whole, f"importing {module_name} failed: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - the user's module: report it as the entry's problem
            raise fail(whole, f"importing {module_name} failed: {type(exc).__name__}: {exc}") from None
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                raise fail(whole, f"{'.'.join(parts[:parts.index(attr)])} has no attribute {attr!r}")
            obj = getattr(obj, attr)
        break
    if obj is None:
        raise fail(whole, f"cannot import {path!r}: {problem or 'not found'}")
    if not (isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer)):
        raise fail(whole, f"{path} is not a torch.optim.Optimizer class (got {type(obj).__name__})")
    return obj


def optimizer_class(spec: "OptimizerSpec | str") -> type:
    """The class an entry (or a name) runs: the class it carries, an inertia name, or an import path."""
    if isinstance(spec, OptimizerSpec) and spec.cls is not None:
        return spec.cls
    name = spec.name if isinstance(spec, OptimizerSpec) else spec
    source = spec.source if isinstance(spec, OptimizerSpec) else name
    if is_import_path(name):
        return import_class(name, source)
    classes = optimizer_classes()
    if name not in classes:
        raise fail(source, f"unknown optimizer {name!r}; valid names: {', '.join(classes)}")
    return classes[name]


def hyperparameters(spec: "OptimizerSpec | str | type") -> dict[str, Any]:
    """Every hyperparameter of an optimizer and its default (``"required"`` when none).

    Takes an inertia name, an import path, an entry or a class. The constructor's own
    arguments come from its signature; the options every inertia optimizer shares
    (``nonfinite``, ``sparse`` …) from the ``defaults`` of an instance, so this follows the
    optimizer package as it changes.
    """
    cls = spec if isinstance(spec, type) else optimizer_class(spec)
    return dict(_hyperparameters(cls))


@functools.lru_cache(maxsize=None)
def _hyperparameters(cls: type) -> dict[str, Any]:
    import torch

    sig = inspect.signature(cls.__init__)
    out = {p.name: ("required" if p.default is p.empty else p.default) for p in sig.parameters.values()
           if p.name not in ("self", "params") and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    needed = {k: 1e-3 for k, v in out.items() if v == "required"}
    # a vector, then a matrix: some optimizers (torch.optim.Muon) take 2-D parameters only
    for shape in ((1,), (2, 2)):
        try:
            instance = cls([torch.nn.Parameter(torch.zeros(shape))], **needed)
        except Exception:  # noqa: BLE001 - a peer's constructor may refuse the dummy; the signature remains
            continue
        for key, value in getattr(instance, "defaults", {}).items():
            out.setdefault(key, value)
        break
    return out


def _type_problem(key: str, value: Any, default: Any) -> str | None:
    number = (int, float)
    if isinstance(default, bool):
        ok, want = isinstance(value, bool), "true or false"
    elif default == "required" or isinstance(default, number):
        ok, want = isinstance(value, number) and not isinstance(value, bool), "a number"
    elif isinstance(default, tuple):
        ok = (isinstance(value, (tuple, list)) and len(value) == len(default)
              and all(isinstance(v, number) and not isinstance(v, bool) for v in value))
        want = f"a tuple of {len(default)} numbers such as {default}"
    elif isinstance(default, str):
        ok, want = isinstance(value, str), "a word"
    else:
        return None  # None defaults (state_dtype, fused): the optimizer checks them
    return None if ok else f"{key} must be {want}, got {value!r}"


def check_hparams(spec: OptimizerSpec) -> None:
    """Unknown keys and values of the wrong type, named with the entry."""
    known = hyperparameters(spec)
    for key, value in spec.hparams.items():
        if key not in known:
            raise fail(spec.source, f"{spec.name} has no hyperparameter {key!r}; valid: {', '.join(known)}")
        problem = _type_problem(key, value, known[key])
        if problem:
            raise fail(spec.source, problem)


def describe_optimizers() -> list[tuple[str, str, dict[str, Any]]]:
    """``(name, one-line summary, defaults)`` for every optimizer."""
    from ..optim.registry import REGISTRY

    return [(n, info.summary, hyperparameters(n)) for n, info in REGISTRY.items()]
