"""Where the data stages run: in the pipeline's own process (`local`) or on a Ray cluster.

`execution.engine: ray` in a profile sends the costly parts of scrubbing (the PII scan of each
pass, a Ray Data pipeline over blocks of records) and of screening (each corpus-wide screen, a
task of its own) to the cluster; what needs the whole corpus in order (surrogate claims, the
decisions) stays on the driver, so the outputs equal the local engine's:

- `ray_cluster`: connecting (`execution.address`), fail closed when the cluster is unreachable.
- `ray_scan`: one scrub pass's scan as `map_batches` over blocks of records; replacements and
  surrogate claims stay in `pii.scrub_records` on the driver (one ordered registry).
- `ray_screens`: the screens of `curate_records` (`curate.SCREEN_PARTS`) as Ray tasks, side by
  side; their findings recorded on the driver in the local engine's order.

Nothing here imports Dagster; `resources/data_engine.py` wraps it for the assets.
"""
