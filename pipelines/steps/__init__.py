"""The Dagster-free core of Sovereign Tune.

Nothing under this package imports dagster: each module is plain Python that a test, a script or
another orchestrator can call. The Dagster layers (resources, assets, checks, pipelines) wrap it.
"""
