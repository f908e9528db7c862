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
    monkeypatch.setattr(curate, "_backdoor_scores", failing_screen)
    cfg = CurationConfig(parallel_min_records=1)  # the near-duplicate screen in a 2nd process
    with pytest.raises(RuntimeError, match="screen failed"):
        curate.curate_records(chat_records(30), cfg)
    assert len(pools) == 1  # started, then shut down although the screen raised


def test_when_the_second_process_is_done_first_then_it_ends_before_the_next_screen(monkeypatch):
    # Its memory is freed as soon as its result is in (#21.1), not after the last screen here.
    shut_down = []
    started = []
    shutdown = ProcessPoolExecutor.shutdown
    start = curate._start_dedup_and_quality
    inserted = curate._inserted_phrases
    backdoor_scores = curate._backdoor_scores

    def recording_shutdown(self, *args, **kwargs):
        shut_down.append(self)
        return shutdown(self, *args, **kwargs)

    def recording_start(*args, **kwargs):
        started.append(start(*args, **kwargs))
        return started[-1]

    def waiting_inserted(*args, **kwargs):
        started[0][1].result(timeout=60)  # the second process is done before this screen ends
        return inserted(*args, **kwargs)

    def checked_backdoor(*args, **kwargs):
        assert shut_down == [started[0][0]] and not curate._FORKED_CANDIDATES
        return backdoor_scores(*args, **kwargs)

    monkeypatch.setattr(ProcessPoolExecutor, "shutdown", recording_shutdown)
    monkeypatch.setattr(curate, "_start_dedup_and_quality", recording_start)
    monkeypatch.setattr(curate, "_inserted_phrases", waiting_inserted)
    monkeypatch.setattr(curate, "_backdoor_scores", checked_backdoor)
    records = chat_records(30)

    result = curate.curate_records(records, CurationConfig(parallel_min_records=1))

    assert started[0][0] is not None and shut_down == [started[0][0]]
    assert result.screened == curate.curate_records(records, CurationConfig()).screened


def test_when_the_second_process_is_slower_then_the_backdoor_screen_waits_for_it(monkeypatch):
    # The response clusters' MinHash search never runs beside the near-duplicate one (#21.1:
    # the two together were 4.3 GiB at 1M records): the backdoor screen starts once the second
    # process has ended, however long it takes.
    import time

    shut_down = []
    shutdown = ProcessPoolExecutor.shutdown
    backdoor_scores = curate._backdoor_scores
    dedup_and_quality = curate._dedup_and_quality

    def recording_shutdown(self, *args, **kwargs):
        shut_down.append(self)
        return shutdown(self, *args, **kwargs)

    def slow(*args, **kwargs):  # runs in the forked process, which inherits the patch
        time.sleep(0.5)
        return dedup_and_quality(*args, **kwargs)

    def checked_backdoor(*args, **kwargs):
        assert len(shut_down) == 1 and not curate._FORKED_CANDIDATES
        return backdoor_scores(*args, **kwargs)

    monkeypatch.setattr(ProcessPoolExecutor, "shutdown", recording_shutdown)
    monkeypatch.setattr(curate, "_dedup_and_quality", slow)
    monkeypatch.setattr(curate, "_backdoor_scores", checked_backdoor)

    result = curate.curate_records(chat_records(30), CurationConfig(parallel_min_records=1))

    assert len(shut_down) == 1 and result.screened


def test_when_screening_ends_then_the_token_caches_are_empty_and_decisions_unchanged():
    # The caches' entries pin the memory arenas of every record's tokens (#21: 278 MiB kept
    # by a bare process after screening 100k records, 131 MiB with them emptied); emptied, a
    # second screening of the same records (cold caches) decides the same.
    from pipelines.steps.integrity.screens import payload, words

    records = chat_records(40)
    cfg = CurationConfig()
    words("warm the cache before screening")
    first = curate.curate_records(records, cfg)
    assert words.cache_info().currsize == 0
    assert payload._token_hash.cache_info().currsize == 0
    second = curate.curate_records(records, cfg)
    assert [(s.id, s.decision, s.reasons) for s in first.screened] == [
        (s.id, s.decision, s.reasons) for s in second.screened
    ]
