"""The stewards' review desk (`make desk`, `python -m pipelines.desk`): see docs/steward.md."""
