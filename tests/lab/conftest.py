"""Shared fixtures for the lab tests: tiny budgets, so the whole folder runs in a few minutes."""
from __future__ import annotations

import pytest

from inertia.lab import api


@pytest.fixture(scope="session")
def small_comparison(tmp_path_factory):
    """One small comparison shared by the report tests: valley (2-D) and minibatch (batch sizes)."""
    out = tmp_path_factory.mktemp("report")
    api.compare(["valley"], ["adam", "momentum", "sgd"], seeds=[0, 1, 2], out=out, steps=40)
    table = api.compare(["valley", "minibatch"], None, seeds=[0, 1], out=out, steps=12)
    return out, table
