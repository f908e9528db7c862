#!/usr/bin/env bash
# Zero egress, end to end: run the whole pipeline (quick profile by default) inside a network
# namespace with no interfaces up (`unshare -n`), on a fresh data root and Dagster instance.
# It succeeds only if nothing in the pipeline needs the network. Needs root (or user namespaces).
#   scripts/no_egress.sh [quick|default]
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-quick}"
work="$(mktemp -d /tmp/sovtune-no-egress.XXXXXX)"
mkdir -p "$work/dagster_home"
cp dagster_home/dagster.yaml "$work/dagster_home/"
start=$(date +%s)
status=0
unshare -n env DAGSTER_HOME="$work/dagster_home" SOVTUNE_DATA_ROOT="$work/data" \
    .venv/bin/sovtune demo --profile "$profile" --json > "$work/summary.json" \
    2> "$work/stderr.log" || status=$?
echo "no-egress run of the $profile profile: exit $status in $(( $(date +%s) - start )) s"
python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print({k: s[k] for k in ('success','records_in','model_version','checks_failed')})" "$work/summary.json"
echo "outputs in $work"
exit $status
