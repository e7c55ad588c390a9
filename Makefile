# The doors for people: `make run` (the demo on http://127.0.0.1:8000; another port: `make run PORT=8001`),
# `make stop` (what `make run` left running, the embedded Redis included) and `make test` (the whole suite).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
BENCH ?=

.PHONY: run stop pai-demo serve test schemathesis check-deploy bench lint typecheck format bootstrap-run bootstrap-dev

run: bootstrap-run
	$(PY) manage.py migrate --noinput
	$(PY) manage.py mlab_demo --base-url http://$(HOST):$(PORT)
	$(PY) -m mlabsite.serve --host $(HOST) --port $(PORT) --demo

stop:  # the processes of `make run` / `make serve` still running, then the embedded Redis under var/
	@if [ -x $(PY) ]; then $(PY) -m mlabsite.serve --stop; else echo "Nothing of Mlab was running."; fi

# One run on the pai engine against the PAI emulator (OSS included), in a var/ of its own (its own SQLite and
# embedded Redis), so that a `make run` worker never picks up its jobs.
pai-demo: bootstrap-run
	MLAB_VAR_DIR=$(CURDIR)/var/pai-demo $(PY) manage.py migrate --noinput
	MLAB_VAR_DIR=$(CURDIR)/var/pai-demo MLAB_LOG_LEVEL=WARNING $(PY) manage.py mlab_demo --pai --impressions 50000

serve: bootstrap-run
	$(PY) -m mlabsite.serve --host $(HOST) --port $(PORT)

test: bootstrap-dev
	$(PY) -m pytest $(PYTEST_ARGS)

schemathesis: bootstrap-dev  # the API against its OpenAPI schema: a real server, the demo's data, no 5xx (tests/schemathesis_api.py)
	$(PY) -m pytest tests/schemathesis_api.py $(PYTEST_ARGS)

check-deploy: bootstrap-dev  # production settings pass Django's deployment checks, warnings included, with a fresh key
	DJANGO_SETTINGS_MODULE=mlabsite.settings.production \
	DJANGO_SECRET_KEY="$$($(PY) -c 'from django.core.management.utils import get_random_secret_key as key; print(key())')" \
	DJANGO_ALLOWED_HOSTS="$${DJANGO_ALLOWED_HOSTS:-mlab.example.com}" \
	$(PY) manage.py check --deploy --fail-level WARNING

bench: bootstrap-dev  # every benchmark, or some: make bench BENCH="train_local dispatch"; exits 1 on a missed target
	$(PY) -m bench $(BENCH)

lint: bootstrap-dev  # style, formatting, the direction of imports (.importlinter) and types
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(MAKE) --no-print-directory typecheck

# mypy's Django plugin imports the settings; with no REDIS_URL they would start the embedded Redis daemon under
# var/, which nothing stops afterwards (a stray daemon after every CI run). The plugin never connects to Redis.
typecheck: bootstrap-dev  # mypy with django-stubs and the DRF stubs, configured in pyproject.toml
	REDIS_URL="$${REDIS_URL:-redis://typecheck.invalid:6379/0}" $(VENV)/bin/mypy

format: bootstrap-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bootstrap-run:
	@scripts/bootstrap run

bootstrap-dev:
	@scripts/bootstrap dev
