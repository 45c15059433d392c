# KAP Clinic: `make run` serves the demo clinic; `make test` runs every check. See README.md.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/test
# pytest-xdist workers for the SQLite and PostgreSQL runs (one per core by default; 0 = in one process);
# --dist loadgroup keeps the demo clinic's checks (tests/demo/, seeded once) on one worker.
export PYTEST_WORKERS ?= auto

# Locked, hashed dependencies (requirements/*.lock, made by `make lock` with uv) for CPython 3.11 on
# Linux x86_64: runtime.lock for servers, dev.lock = runtime + the dev extra (tests, linters, browser).
LOCK_PYTHON := 3.11
LOCK_PLATFORM := x86_64-unknown-linux-gnu
LOCK_FLAGS := --generate-hashes --python-version $(LOCK_PYTHON) --python-platform $(LOCK_PLATFORM) \
	--custom-compile-command 'make lock' --quiet $(LOCK_ARGS)

.PHONY: install run test lint typecheck checks test-sqlite test-postgres test-browser bench bench-growth clean lock upgrade

# Two pip runs: every third-party package from the lock, each checked against its hash; then the project
# itself, editable, with no dependencies and built by the locked setuptools (no unhashed download).
$(STAMP): pyproject.toml requirements/dev.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP)

# Re-resolve after editing pyproject.toml's dependencies: keeps every pin that still fits and adds what is
# new. `make upgrade` moves every package to the newest version the bounds allow;
# `make lock LOCK_ARGS='--upgrade-package django'` moves one. Then `make install` and `make test`.
lock: install
	$(BIN)/uv pip compile pyproject.toml requirements/build.in $(LOCK_FLAGS) -o requirements/runtime.lock
	$(BIN)/uv pip compile pyproject.toml requirements/build.in --extra dev $(LOCK_FLAGS) -o requirements/dev.lock

upgrade:
	$(MAKE) lock LOCK_ARGS=--upgrade

run: install
	@bin/serve

test: install lint typecheck checks test-sqlite test-postgres test-browser
	@echo "make test: all checks passed."

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check kapclinic tests bench conftest.py manage.py

typecheck: install
	KAP_ENV=test $(BIN)/mypy --strict kapclinic

checks: install
	KAP_ENV=test $(BIN)/python manage.py check --fail-level WARNING
	KAP_ENV=test $(BIN)/python manage.py makemigrations --check --dry-run
	KAP_ENV=production SECRET_KEY=check-deploy-only-$$(printf 'k%.0s' {1..60}) ALLOWED_HOSTS=clinic.example.org \
		PROCESS_NOTE_KEYS=Y2hlY2stZGVwbG95LW9ubHktcHJvY2Vzcy1rZXlzISE= \
		AUDIT_CHAIN_KEY=check:check-deploy-only-audit-chain-key-0123456789 AUDIT_CHECKPOINT_EMAIL=audit@clinic.example.org \
		FHIR_ID_TOKEN_KEY="$$(openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null)" \
		DATABASE_URL=sqlite:///:memory: $(BIN)/python manage.py check --deploy --fail-level WARNING

test-sqlite: install
	@echo "== pytest on SQLite =="
	KAP_ENV=test DATABASE_URL=sqlite:///var/test.sqlite3 $(BIN)/pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadgroup

test-postgres: install
	@bin/test-postgres

test-browser: install
	@bin/test-browser

bench: install
	@bin/bench

# Growth 2,000 -> 20,000 as in-process CPU per request, both sizes side by side (bench/growth.py).
bench-growth: install
	@bin/bench --db sqlite --sizes 2000,20000 --only floor --duration 1 --conc 1 > /dev/null
	@.venv/bin/python bench/growth.py var/bench/sqlite-n2000.sqlite3 var/bench/sqlite-n20000.sqlite3

clean:
	rm -rf $(VENV) var *.egg-info
