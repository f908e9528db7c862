"""curate_records shuts its second process down whatever a screen does (issue #17)."""

from concurrent.futures import ProcessPoolExecutor

import pytest

from pipelines.steps.config import CurationConfig
from pipelines.steps.integrity import curate
from tests.test_training import chat_records


def test_when_a_screen_raises_then_the_second_process_is_shut_down(monkeypatch):
    pools = []
    shutdown = ProcessPoolExecutor.shutdown

    def recording_shutdown(self, *args, **kwargs):
        pools.append(self)
        return shutdown(self, *args, **kwargs)

    def failing_screen(*args, **kwargs):
        raise RuntimeError("screen failed")

    monkeypatch.setattr(ProcessPoolExecutor, "shutdown", recording_shutdown)
    monkeypatch.setattr(curate, "_screen_backdoor", failing_screen)
    cfg = CurationConfig(parallel_min_records=1)  # the near-duplicate screen in a 2nd process
    with pytest.raises(RuntimeError, match="screen failed"):
        curate.curate_records(chat_records(30), cfg)
    assert len(pools) == 1  # started, then shut down although the screen raised
