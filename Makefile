# Loyalty Review: `make run` starts the app with demo data, `make test` runs the whole suite.
# Both create .venv and install the pinned requirements first (`run` the runtime pins in
# requirements.txt, `test` those plus the test and lint tools in requirements-dev.txt); nothing
# else is needed but Python 3.11 (and, for the browser tests, root to install Debian's chromium).

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# The Complete Journey has 2,469 households; `make run HOUSEHOLDS=300` loads a smaller demo.
HOUSEHOLDS ?=
CHROMIUM := /usr/bin/chromium

.PHONY: run test lint bench install install-dev chromium services-check clean

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

$(VENV)/.installed: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

# The test and lint tools on top of the runtime pins (requirements-dev.txt: -r requirements.txt).
$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

# The development settings for every process `run` starts (the Celery app and wsgi default to
# production, which a developer's machine has no key for).
run: export DJANGO_SETTINGS_MODULE = loyalty.settings.base
run: install
	@mkdir -p var
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_complete_journey --skip-if-loaded $(if $(HOUSEHOLDS),--households $(HOUSEHOLDS))
	$(PY) manage.py bootstrap_models
	$(PY) manage.py route_predictions
	$(PY) manage.py create_demo_users
	@echo ""
	@echo "Loyalty Review is starting at http://$(HOST):$(PORT)/  (Ctrl-C stops web, worker and beat)"
	@echo ""
	@trap 'kill 0' INT TERM EXIT; \
	  $(VENV)/bin/celery -A loyalty worker --loglevel=INFO --concurrency=2 & \
	  $(VENV)/bin/celery -A loyalty beat --loglevel=INFO & \
	  $(PY) manage.py runserver $(HOST):$(PORT) --noreload & \
	  wait

chromium:
	@test -x $(CHROMIUM) || { echo "Installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: install-dev chromium
	@mkdir -p var
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DJANGO_SETTINGS_MODULE=loyalty.settings.test $(PY) manage.py makemigrations --check --dry-run
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: install
	$(PY) bench/import_events.py --events 200000

clean:
	rm -rf var test-results
