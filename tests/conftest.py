"""Shared fixtures: real image folders built from scikit-learn's digits, and an isolated decode cache."""

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session decodes into its own cache, never the user's ~/.cache."""
    monkeypatch.setenv("VISIONSWEEP_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
