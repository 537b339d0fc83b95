"""``python -m inertia`` is the ``inertia`` command."""
import sys

from .cli import main

sys.exit(main())
