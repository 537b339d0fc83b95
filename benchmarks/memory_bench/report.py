"""The results' header (machine, versions, load average, command, start time) and the
writing of a section's ``memory_<section>.md`` and ``.json`` (the Markdown also printed)."""
from __future__ import annotations

import json
import os
import platform
import time

import torch

from . import RESULTS


def machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, Python {platform.python_version()}"


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def versions() -> str:
    out = []
    for name in ("numba", "torchao", "bitsandbytes"):
        try:
            import importlib.metadata as md

            out.append(f"{name} {md.version(name)}")
        except Exception:  # noqa: BLE001
            out.append(f"{name}: not installed")
    return ", ".join(out)


def header(title: str, command: str) -> list[str]:
    return [f"# {title}", "",
            f"Machine: {machine()}; {versions()}. Command: `{command}`. "
            f"Started {time.strftime('%Y-%m-%d %H:%M')}, load average {load()} (1/5/15 min).",
            ""]


def write(name: str, lines: list[str], data: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"memory_{name}.md").write_text("\n".join(lines) + "\n")
    (RESULTS / f"memory_{name}.json").write_text(json.dumps(data, indent=1, default=str))
    print("\n".join(lines))
