"""The screens of `curate_records` as Ray tasks: one task per corpus-wide screen, side by side.

Each screen reads the whole corpus (MinHash clusters, trigger phrases, repeated payloads), so
the corpus is put in Ray's object store once and each of `curate.SCREEN_PARTS` (the
near-duplicate and quality screens, the inserted phrases, the repeated payloads, the response
clusters, the injection screen) is computed by `curate.screen_part` in a task of its own, one
CPU each, at most `execution.workers` at a time, costliest first. The corpus goes packed
(`PackedRecords`): a few large buffers that the tasks of a node read in place in the object
store. What comes back are scores and clusters (ids, no text); the driver records them in the
local engine's order, so the decisions, reasons and scores equal the local engine's.

The five cost about alike, so two workers screen 1.72x as fast as one at 20k records and 1.96x
at 100k (docs/benchmarks.md, "Screening on Ray: each screen a task"). An earlier design sent
only the MinHash signatures to Ray (a Ray Data `map_batches` per block of records) and ran the
screens on the driver: two workers were no faster than one (0.96x), since signing is a small
part of a screen and the banding, the exact Jaccard of the candidates and every other screen
stayed in one process.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pipelines.steps.config import CurationConfig, ExecutionConfig
from pipelines.steps.integrity import curate
from pipelines.steps.integrity.curate import CurationResult, curate_records
from pipelines.steps.integrity.packed import PackedRecords
from pipelines.steps.integrity.screens.backdoor import Disruption
from pipelines.steps.records import Record


class RayScreenError(RuntimeError):
    """A screen failed on the Ray cluster: no decision may be taken without it."""


def ray_screen_runner(execution: ExecutionConfig) -> curate.ScreenRunner:
    """A `curate.ScreenRunner` computing each screen part in a task on the connected cluster.

    Raises (from the runner):
        RayScreenError: A task failed or its worker died; the message names the screen part and
            the exception's type (never a record's text), and the parts still running are
            cancelled.
    """

    def run(candidates: Sequence[Record], cfg: CurationConfig) -> Mapping[str, Any]:
        import ray

        # Packed, the records go to the object store as a few large buffers that every task on
        # a node reads in place (`PackedRecords.__reduce__`), not as one copy a task.
        packed = candidates if isinstance(candidates, PackedRecords) else PackedRecords(candidates)
        corpus = ray.put(packed)
        del packed
        task = ray.remote(num_cpus=1, max_retries=0)(_screen_part)
        waiting = list(curate.SCREEN_PARTS)  # costliest first
        running: dict[Any, str] = {}
        found: dict[str, Any] = {}
        try:
            while waiting or running:
                while waiting and len(running) < execution.workers:
                    name = waiting.pop(0)
                    running[task.remote(name, corpus, cfg)] = name
                done, _ = ray.wait(list(running), num_returns=1)
                for ref in done:
                    name = running.pop(ref)
                    try:
                        found[name] = ray.get(ref)
                    except Exception as exc:  # RayTaskError, WorkerCrashedError, ...
                        cause = getattr(exc, "cause", None) or exc
                        raise RayScreenError(
                            f"screen {name} failed on the Ray cluster at {execution.address} "
                            f"({type(cause).__name__}); no record was decided"
                        ) from None
        finally:
            for ref in running:
                ray.cancel(ref, force=True)
            del corpus
        return found

    return run


def _screen_part(name: str, candidates: Sequence[Record], cfg: CurationConfig) -> Any:
    """`curate.screen_part` in a Ray worker (the task `ray_screen_runner` submits); the
    screens' token caches are emptied after it, as after a local screening (the worker
    lives on)."""
    try:
        return curate.screen_part(name, candidates, cfg)
    finally:
        curate.release_token_caches()


def curate_on_ray(
    records: Sequence[Record],
    cfg: CurationConfig,
    decisions: dict[str, str] | None,
    execution: ExecutionConfig,
    *,
    perplexity: Callable[[list[str]], list[float]] | None = None,
    disruption: Disruption | None = None,
) -> CurationResult:
    """`curate_records` with its screens computed on the connected Ray cluster
    (`ray_screen_runner`); the first pass (length bounds, exact copies), the decisions, ONION
    (`perplexity`) and the base model's reading of sibling phrases (`disruption`) stay in this
    process. The result equals the local engine's."""
    return curate_records(
        records,
        cfg,
        decisions,
        perplexity=perplexity,
        disruption=disruption,
        run_screens=ray_screen_runner(execution),
    )
