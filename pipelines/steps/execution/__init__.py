"""Where the data stages run: in the pipeline's own process (`local`) or on a Ray cluster.

`execution.engine: ray` in a profile sends the costly, per-record part of scrubbing (the PII
scan of each pass) and of screening (MinHash signatures) to Ray Data pipelines; everything that
needs the whole corpus in order stays on the driver, so the outputs equal the local engine's:

- `ray_cluster`: connecting (`execution.address`), fail closed when the cluster is unreachable.
- `ray_scan`: one scrub pass's scan as `map_batches` over blocks of records; replacements and
  surrogate claims stay in `pii.scrub_records` on the driver (one ordered registry).
- `ray_signatures`: MinHash signatures per block of records; banding and the exact Jaccard of
  the candidates stay on the driver (`screens.minhash`).

Nothing here imports Dagster; `resources/data_engine.py` wraps it for the assets.
"""
