"""Shared fixtures. Every test runs offline, with telemetry off."""

import pytest

from pipelines.steps.offline import enforce_offline

enforce_offline()


def _import_anyio_now() -> None:
    """Import anyio's lazily imported submodules here, in the main thread.

    anyio (a pytest plugin, so its modules go through pytest's assertion rewriting) imports
    its submodules on first use; the desk's test client first used one from its portal
    thread while the main thread was parsing too, and CPython 3.11's parser failed with
    "AST constructor recursion depth mismatch" (CI, 2026-12-05, test_desk).
    """
    import anyio

    for name in dir(anyio):
        getattr(anyio, name)


_import_anyio_now()


@pytest.fixture
def landing(tmp_path):
    folder = tmp_path / "landing"
    folder.mkdir()
    return folder


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Start every test without a leftover Dagster definitions-state storage.

    `DagsterInstance.__enter__` puts the instance's defs-state storage in a context variable;
    `instance_for_test` used in a generator fixture (tests/test_automation.py) leaves it set after
    the instance is disposed, and the next `Definitions` resolution in another module fails with
    "Attempted to resolve undefined DagsterInstance weakref". Resetting it before each test
    (before its fixtures) keeps the modules independent of their order. Sensor, schedule and
    asset contexts built on an instance reset it again when they are closed, so tests close
    them with `with` (at garbage collection the reset could land in another test's setup).
    """
    from dagster._core.storage.defs_state.base import _current_storage

    _current_storage.set(None)
