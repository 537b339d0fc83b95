"""Where generated kernels live: small Python modules in a cache directory.

Kernels are written as source text (:mod:`.numba_cpu`, :mod:`.triton_gpu`) and imported
from a real file, because numba's on-disk cache (``cache=True``) and Triton's JIT both
read a function's source file. A module is named by the hash of its text, so a changed
rule, dtype or option is a new file and a stale kernel can never be loaded. The text also
carries a digest of the support modules it imports, so editing those invalidates every
generated kernel too.

The directory is ``$INERTIA_CACHE_DIR``, else ``$XDG_CACHE_HOME/inertia/kernels`` (by
default ``~/.cache/inertia/kernels``); if it cannot be written, a temporary directory.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
from typing import Any, Callable

_lock = threading.Lock()
_loaded: dict[str, Any] = {}
_directory: str | None = None


def directory() -> str:
    """The kernel cache directory (created on first use)."""
    global _directory
    if _directory is None:
        base = os.environ.get("INERTIA_CACHE_DIR") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
            "inertia", "kernels")
        try:
            os.makedirs(base, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=base, delete=True)
            probe.close()
        except OSError:
            base = tempfile.mkdtemp(prefix="inertia-kernels-")
        _directory = base
    return _directory


def _support_digest() -> str:
    here = os.path.dirname(__file__)
    digest = hashlib.sha256()
    for name in ("numba_support.py", "triton_support.py", "quantize.py"):
        path = os.path.join(here, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()[:16]


SUPPORT = _support_digest()


def compiled(text: str, wrap: Callable[[Any], Any]) -> Any:
    """Import the module whose source is ``text`` (writing it first) and return ``wrap(module)``."""
    text = f"# support {SUPPORT}\n{text}"
    name = "k_" + hashlib.sha256(text.encode()).hexdigest()[:24]
    hit = _loaded.get(name)
    if hit is not None:
        return hit
    with _lock:
        hit = _loaded.get(name)
        if hit is not None:
            return hit
        path = os.path.join(directory(), name + ".py")
        if not os.path.exists(path):
            tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, path)  # atomic: concurrent processes never see half a file
        qualified = f"inertia_kernels.{name}"
        spec = importlib.util.spec_from_file_location(qualified, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[qualified] = module
        spec.loader.exec_module(module)
        _loaded[name] = wrap(module)
        return _loaded[name]
