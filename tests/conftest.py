"""Shared fixtures. Every test runs offline, with telemetry off."""

import pytest

from pipelines.steps.offline import enforce_offline

enforce_offline()


@pytest.fixture
def landing(tmp_path):
    folder = tmp_path / "landing"
    folder.mkdir()
    return folder
