"""Operational scripts (crash-safety drill and similar); run from the repository root."""
