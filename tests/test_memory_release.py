"""A finished stage's freed memory goes back to the system (#21, `release_freed_memory`)."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# 4,000 blocks of 64 KiB (under glibc's mmap threshold: on the heap), each followed by a small
# block that stays alive, so the freed blocks sit between live ones and the heap cannot shrink
# from its top: the memory is free but still resident until it is trimmed.
FRAGMENTED_HEAP = textwrap.dedent(
    """
    import psutil
    from pipelines.steps.memory import release_freed_memory

    process = psutil.Process()
    start = process.memory_info().rss
    blocks, pins = [], []
    for _ in range(4000):
        blocks.append(b"x" * 65536)
        pins.append(b"y" * 1024)
    del blocks
    freed = process.memory_info().rss - start
    trimmed = release_freed_memory()
    after = process.memory_info().rss - start
    print(trimmed, freed >> 20, after >> 20)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_when_freed_blocks_sit_between_live_ones_then_the_release_returns_them():
    out = subprocess.run(
        [sys.executable, "-c", FRAGMENTED_HEAP],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    trimmed, freed_mib, after_mib = out[0] == "True", int(out[1]), int(out[2])
    assert trimmed
    # freed but still held: most of the 250 MiB; after the release: nearly none of it
    assert freed_mib >= 64, f"the heap was not fragmented as set up ({freed_mib} MiB held)"
    assert after_mib <= freed_mib / 4, f"{freed_mib} MiB held before, {after_mib} MiB after"


def test_the_release_runs_where_the_c_library_has_no_trim(monkeypatch):
    from pipelines.steps import memory

    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)
    assert memory.release_freed_memory() is False
