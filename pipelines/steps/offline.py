"""Keep every library off the network. Call `enforce_offline()` in every entry point.

MLflow, Great Expectations, Hugging Face, Dagster, Ray and tldextract (inside Presidio) all
phone home unless told not to; see the threat model in docs/security.md.
"""

import os

OFFLINE_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DAGSTER_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # Ray reports usage statistics to its maintainers unless this is 0 (the Ray engine also
    # starts no dashboard: `pipelines.steps.execution.ray_cluster`).
    "RAY_USAGE_STATS_ENABLED": "0",
}


def enforce_offline() -> None:
    """Set the environment switches that turn off telemetry and downloads (idempotent)."""
    for key, value in OFFLINE_ENV.items():
        os.environ[key] = value


def offline_tldextract():
    """A tldextract extractor that only uses the suffix list bundled in the package."""
    import tldextract

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)
