# Warrant — the two commands are `make run` and `make test`; both build on `make install`.
#
# Embedded defaults: SQLite in var/ and a filesystem Celery broker (no server needed).
# Set DATABASE_URL / CELERY_BROKER_URL to use PostgreSQL and Redis instead.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.warrant-installed
HOST ?= 127.0.0.1
PORT ?= 8000
# The address e-mailed links carry; follows HOST/PORT unless set (environment or command line).
WARRANT_BASE_URL ?= http://$(HOST):$(PORT)
WEB_CONCURRENCY ?= 2
WORKER_CONCURRENCY ?= 2
ARGS ?=

# Interpreters tried in order for the virtual environment (the first that is Python >= 3.12).
PYTHON_CANDIDATES := $(PYTHON) python3.14 python3.13 python3.12 \
	$(sort $(wildcard $(HOME)/.pyenv/versions/3.1[2-9]*/bin/python)) python3 python

.PHONY: help install run test lint check clean

help: ## Show this help
	@echo "Warrant — make targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'
	@echo "Options: ARGS='...' (passed to pytest), HOST/PORT (and WARRANT_BASE_URL) for run, PYTHON=/path/to/python3.12 for install."

install: $(STAMP) ## Create .venv with Python >= 3.12 and install the pinned dependencies

$(STAMP): requirements.lock requirements-nodeps.txt
	@if [ ! -x "$(PY)" ] || ! "$(PY)" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
		found=""; \
		for c in $(PYTHON_CANDIDATES); do \
			if "$$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then found="$$c"; break; fi; \
		done; \
		if [ -z "$$found" ]; then \
			echo "error: Warrant needs Python >= 3.12; none found (tried: $(PYTHON_CANDIDATES))." >&2; \
			echo "       Install one (e.g. 'pyenv install 3.12', or your OS's python3.12 package)," >&2; \
			echo "       or point to it with: make install PYTHON=/path/to/python3.12" >&2; \
			exit 1; \
		fi; \
		echo "Creating $(VENV) with $$found ($$("$$found" -c 'import sys; print(sys.version.split()[0])'))"; \
		rm -rf "$(VENV)"; \
		"$$found" -m venv "$(VENV)"; \
	fi
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	@touch "$(STAMP)"
	@echo "Installed into $(VENV)."

run: install ## Migrate, load demo data, and serve web + Celery worker + beat at http://HOST:PORT
	@mkdir -p var/broker/queue var/broker/processed var/broker/control
	$(PY) manage.py migrate --noinput
	WARRANT_BASE_URL='$(WARRANT_BASE_URL)' $(PY) manage.py seed_demo
	@if [ -f governance/management/commands/ensure_schedule.py ]; then \
		$(PY) manage.py ensure_schedule; \
	else \
		echo "(ensure_schedule not available yet: periodic jobs not scheduled)"; \
	fi
	$(PY) manage.py collectstatic --noinput --verbosity 0
	@echo
	@echo "Warrant is starting at http://$(HOST):$(PORT)/  (API docs: http://$(HOST):$(PORT)/api/docs/)"
	@echo "Links in e-mails point at $(WARRANT_BASE_URL) (set WARRANT_BASE_URL to change)."
	@echo "Demo logins (password warrant-demo):"
	@echo "  admin   IAM admin (superuser; also /admin/)"
	@echo "  ines    IAM admin"
	@echo "  olivia  agent owner"
	@echo "  oscar   agent owner"
	@echo "  aude    auditor"
	@echo "Press Ctrl-C to stop the web server, the Celery worker and Celery beat."
	@echo
	@pids=""; stopping=""; \
	stop() { trap - INT TERM EXIT; kill $$pids 2>/dev/null || true; wait 2>/dev/null || true; echo "Warrant stopped."; }; \
	trap 'stopping=1' INT TERM; trap stop EXIT; \
	export WARRANT_BASE_URL='$(WARRANT_BASE_URL)'; \
	$(VENV)/bin/gunicorn governance.wsgi:application --bind "$(HOST):$(PORT)" --workers $(WEB_CONCURRENCY) \
		--access-logfile - --graceful-timeout 5 & pids="$$pids $$!"; \
	$(VENV)/bin/celery -A governance worker --loglevel INFO --concurrency $(WORKER_CONCURRENCY) \
		--hostname "warrant@%h" & pids="$$pids $$!"; \
	$(VENV)/bin/celery -A governance beat --loglevel INFO \
		--scheduler django_celery_beat.schedulers:DatabaseScheduler & pids="$$pids $$!"; \
	wait -n || true; sleep 1 || true; \
	if [ -n "$$stopping" ]; then exit 0; fi; \
	echo "A Warrant process exited; stopping the others." >&2; exit 1

test: install ## Run the test suite (SQLite; PostgreSQL when DATABASE_URL is set); ARGS='-k name' passes through
	$(VENV)/bin/pytest $(ARGS)

lint: install ## ruff over the whole tree
	$(VENV)/bin/ruff check .

check: install ## Django system checks and missing-migration check
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

clean: ## Remove .venv, var/ (the local SQLite database, broker queue, static files) and caches
	rm -rf "$(VENV)" var .pytest_cache .ruff_cache test-results
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
