# KAP Clinic: `make run` serves the demo clinic; `make test` runs every check. See README.md.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/test

.PHONY: install run test lint typecheck checks test-sqlite test-postgres test-browser bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: install
	@bin/serve

test: install lint typecheck checks test-sqlite test-postgres test-browser
	@echo "make test: all checks passed."

lint: install
	$(BIN)/ruff check .

typecheck: install
	KAP_ENV=test $(BIN)/mypy --strict kapclinic/clinical
	KAP_ENV=test $(BIN)/mypy kapclinic

checks: install
	KAP_ENV=test $(BIN)/python manage.py check --fail-level WARNING
	KAP_ENV=test $(BIN)/python manage.py makemigrations --check --dry-run
	KAP_ENV=production SECRET_KEY=check-deploy-only-$$(printf 'k%.0s' {1..60}) ALLOWED_HOSTS=clinic.example.org \
		PROCESS_NOTE_KEYS=Y2hlY2stZGVwbG95LW9ubHktcHJvY2Vzcy1rZXlzISE= \
		AUDIT_CHAIN_KEY=check:check-deploy-only-audit-chain-key-0123456789 AUDIT_CHECKPOINT_EMAIL=audit@clinic.example.org \
		DATABASE_URL=sqlite:///:memory: $(BIN)/python manage.py check --deploy --fail-level WARNING

test-sqlite: install
	@echo "== pytest on SQLite =="
	KAP_ENV=test DATABASE_URL=sqlite:///var/test.sqlite3 $(BIN)/pytest -q -p no:cacheprovider

test-postgres: install
	@bin/test-postgres

test-browser: install
	@bin/test-browser

bench: install
	@bin/bench

clean:
	rm -rf $(VENV) var *.egg-info
