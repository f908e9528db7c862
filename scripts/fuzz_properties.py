"""Run the hostile-input properties of tests/test_properties.py with many more examples.

    .venv/bin/python scripts/fuzz_properties.py --examples 20000
    .venv/bin/python scripts/fuzz_properties.py --examples 500 -k ingest --presidio-timing

Each property is called the way pytest calls it, with its example count raised through
SOVTUNE_PROPERTY_EXAMPLES; the Presidio property runs a tenth of them, as in CI. A property that
is a strict xfail in the suite (a known bug) is expected to fail here too, and is reported as
such. Exit status 1 when any other property fails, or a known bug no longer reproduces.
"""

import argparse
import importlib
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent
TEST_MODULE = "tests.test_properties"
PRESIDIO_TIMING_INPUT = "1-" * 50_000
"""100 kB of digit-dash pairs: the hardest input we found; spaCy alone takes most of a minute."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000, help="examples per property")
    parser.add_argument("-k", dest="select", default="", help="run properties whose name has this")
    parser.add_argument(
        "--presidio-timing",
        action="store_true",
        help="also time Presidio's analyzer on one 100 kB adversarial input (about a minute)",
    )
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    from pipelines.steps.offline import enforce_offline

    enforce_offline()
    # The test module reads the count at import time.
    os.environ["SOVTUNE_PROPERTY_EXAMPLES"] = str(args.examples)
    properties = importlib.import_module(TEST_MODULE)

    unexpected = 0
    for name, test in _properties(properties, args.select):
        calls, seconds, error = _run(test)
        known_bug = _xfail_reason(test)
        if error is None and known_bug is None:
            verdict = "ok"
        elif error is not None and known_bug is not None:
            verdict = "known bug reproduced"
        elif error is None:
            verdict = "KNOWN BUG NO LONGER REPRODUCES: remove its xfail"
            unexpected += 1
        else:
            verdict = f"FAILED: {type(error).__name__}"
            unexpected += 1
        print(f"{name:80} {calls:>7} examples {seconds:8.1f} s  {verdict}", flush=True)
        if verdict.startswith("FAILED"):
            traceback.print_exception(error)

    if args.presidio_timing:
        print(f"presidio analyze, 100 kB adversarial input: {_presidio_seconds(properties):.1f} s")
    return 1 if unexpected else 0


def _properties(module: ModuleType, select: str) -> list[tuple[str, Callable[[], None]]]:
    return [
        (name, test)
        for name, test in vars(module).items()
        if name.startswith("test_") and hasattr(test, "hypothesis") and select in name
    ]


def _run(test: Callable[[], None]) -> tuple[int, float, BaseException | None]:
    """Run one property; count the examples it executed (generated, explicit and shrinking)."""
    inner = test.hypothesis.inner_test
    calls = 0

    def counted(*args: object, **kwargs: object) -> None:
        nonlocal calls
        calls += 1
        inner(*args, **kwargs)

    test.hypothesis.inner_test = counted
    start = time.perf_counter()
    try:
        test()
    except Exception as error:  # noqa: BLE001 — reported per property, the run goes on
        return calls, time.perf_counter() - start, error
    finally:
        test.hypothesis.inner_test = inner
    return calls, time.perf_counter() - start, None


def _xfail_reason(test: Callable[[], None]) -> str | None:
    for mark in getattr(test, "pytestmark", []):
        if mark.name == "xfail":
            return mark.kwargs.get("reason", "")
    return None


def _presidio_seconds(module: ModuleType) -> float:
    analyzer = module._analyzer()
    start = time.perf_counter()
    analyzer.analyze(
        text=PRESIDIO_TIMING_INPUT,
        language="en",
        entities=module.PII_CFG.entities,
        score_threshold=module.PII_CFG.score_threshold,
    )
    return time.perf_counter() - start


if __name__ == "__main__":
    sys.exit(main())
