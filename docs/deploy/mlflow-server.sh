#!/usr/bin/env bash
# MLflow tracking server and model registry for production: PostgreSQL backend store, a
# configured artifact root served through the server (clients never write to it directly),
# bound to 127.0.0.1 behind the authenticating proxy (see docs/operations.md).
#
# Environment:
#   MLFLOW_BACKEND_STORE_URI  postgresql+psycopg2://mlflow:PASSWORD@db-host:5432/mlflow
#   MLFLOW_ARTIFACTS_ROOT     file:///var/lib/sovtune/mlflow/artifacts (or s3://bucket/prefix)
#   MLFLOW_PORT, MLFLOW_WORKERS  default 5000 and 2
# The pipeline's profile then sets `registry.tracking_uri: http://127.0.0.1:5000` (or the
# proxy's in-cluster URL); tests/test_production.py starts this same command.
set -euo pipefail
: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI to postgresql://user:pass@host/db}"
: "${MLFLOW_ARTIFACTS_ROOT:?set MLFLOW_ARTIFACTS_ROOT to a file:// or s3:// location}"
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true
exec mlflow server \
  --host 127.0.0.1 \
  --port "${MLFLOW_PORT:-5000}" \
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
  --serve-artifacts \
  --artifacts-destination "$MLFLOW_ARTIFACTS_ROOT" \
  --default-artifact-root mlflow-artifacts:/ \
  --workers "${MLFLOW_WORKERS:-2}"
