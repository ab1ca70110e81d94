"""Fixtures of the platform tests that several modules share."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def models(platform, tmp_path_factory):
    """The serving tests' registered models (see ``serving_support.register_models``)."""
    pytest.importorskip("mlflow")
    pytest.importorskip("sklearn")
    from serving_support import register_models

    register_models(platform, tmp_path_factory.mktemp("code"))
