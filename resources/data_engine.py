"""Where the data stages run: the run's own process, or a Ray cluster (`execution:`)."""

from collections.abc import Callable, Iterable, Iterator, Sequence

import dagster as dg

from pipelines.steps.config import CurationConfig, ExecutionConfig
from pipelines.steps.integrity.curate import CurationResult, curate_records
from pipelines.steps.integrity.screens.backdoor import Disruption
from pipelines.steps.privacy.pii import ScrubResult
from pipelines.steps.records import Record
from resources.pii_engine import PIIEngine

STREAM_BATCH_RECORDS = 4096


class DataEngine(dg.ConfigurableResource):
    """The profile's `execution` section: `local` (default) or `ray` at `address`.

    Under `ray` the PII scan of every scrub pass runs as a Ray Data pipeline on the cluster, and
    each corpus-wide screen as a Ray task (`pipelines.steps.execution`); replacements, surrogate
    claims and the screens' decisions stay in the run, so both engines write the same files. A
    cluster that cannot be reached fails the stage with a message naming `execution.address`.
    """

    engine: str = "local"
    address: str = "local"
    workers: int = 2
    batch_size: int = 64
    stream_batch_records: int = STREAM_BATCH_RECORDS
    """Records the drop stages read, scrub and write at a time, under either engine (#21):
    what a stage holds grows with this, not with the drop. The files do not depend on it,
    except where two values' surrogate candidates collide (`PIIEngine.scrub_batches`)."""

    @property
    def config(self) -> ExecutionConfig:
        return ExecutionConfig(
            engine=self.engine,
            address=self.address,
            workers=self.workers,
            batch_size=self.batch_size,
        )

    @property
    def on_ray(self) -> bool:
        return self.config.engine == "ray"

    def scrub(self, pii: PIIEngine, records: list[Record]) -> ScrubResult:
        """`pii.scrub(records)`, each pass's scan on Ray under the `ray` engine."""
        if not self.on_ray:
            return pii.scrub(records)
        from pipelines.steps.execution.ray_cluster import connect
        from pipelines.steps.execution.ray_scan import ray_message_scan

        connect(self.config)
        return pii.scrub(records, scan=ray_message_scan(pii.config, self.config))

    def scrub_batches(
        self, pii: PIIEngine, batches: Iterable[list[Record]]
    ) -> Iterator[tuple[list[Record], ScrubResult]]:
        """`pii.scrub_batches(batches)`, each pass's scan on Ray under the `ray` engine."""
        if not self.on_ray:
            yield from pii.scrub_batches(batches)
            return
        from pipelines.steps.execution.ray_cluster import connect
        from pipelines.steps.execution.ray_scan import ray_message_scan

        connect(self.config)
        yield from pii.scrub_batches(batches, scan=ray_message_scan(pii.config, self.config))

    def residual(self, pii: PIIEngine, records: list[Record]) -> dict[str, int]:
        """`pii.residual(records)` (the `no_residual_pii` re-scan), its scan on Ray under the
        `ray` engine: as costly as the scrub's first pass, so it goes where the scrub goes."""
        if not self.on_ray:
            return pii.residual(records)
        from pipelines.steps.execution.ray_cluster import connect
        from pipelines.steps.execution.ray_scan import ray_message_scan

        connect(self.config)
        return pii.residual(
            records, scan=ray_message_scan(pii.residual_config, self.config, every_pack=True)
        )

    def curate(
        self,
        records: Sequence[Record],
        cfg: CurationConfig,
        decisions: dict[str, str] | None,
        *,
        perplexity: Callable[[list[str]], list[float]] | None = None,
        disruption: Disruption | None = None,
    ) -> CurationResult:
        """`curate_records`, each of its screens a task on Ray under the `ray` engine."""
        if not self.on_ray:
            return curate_records(
                records, cfg, decisions, perplexity=perplexity, disruption=disruption
            )
        from pipelines.steps.execution.ray_cluster import connect
        from pipelines.steps.execution.ray_screens import curate_on_ray

        connect(self.config)
        return curate_on_ray(
            records, cfg, decisions, self.config, perplexity=perplexity, disruption=disruption
        )
