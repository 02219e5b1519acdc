# CarePill Voice. `make demo` and `make test` need nothing but Python 3.11+.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# PostgreSQL used by `make test` for its second pass (the suite runs on both databases).
TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test
# Demo and dev runs get a throwaway secret when none is set; production must set one.
SECRET = $${DJANGO_SECRET_KEY:-$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(50))')}

.PHONY: demo run web worker test test-sqlite test-postgres lint venv clean flower beat pregenerate

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt clients/pi/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q -e clients/pi
	touch $@

## The whole path on embedded defaults: Redis (local or embedded), worker, web, three reminders.
demo: venv
	DJANGO_SECRET_KEY=$(SECRET) $(BIN)/python manage.py demo

## Web + worker in the foreground for real use (set DJANGO_SECRET_KEY, or DJANGO_DEBUG=1 locally).
run: venv
	$(BIN)/python manage.py runstack

web: venv
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python -m gunicorn medicine_project.wsgi:application --bind $${WEB_BIND:-127.0.0.1:8000} --workers $${WEB_WORKERS:-2}

worker: venv
	$(BIN)/python -m celery -A medicine_project worker -l info

lint: venv
	$(BIN)/ruff check .

test-sqlite: venv
	DATABASE_URL= $(BIN)/python -m pytest -m "not gpu_stack"

test-postgres: venv
	DATABASE_URL=$(TEST_POSTGRES_URL) $(BIN)/python -m pytest -m "not gpu_stack"

## Lint, then the whole suite on SQLite and on PostgreSQL.
test: lint test-sqlite test-postgres

clean:
	rm -rf $(VENV) var media/demo

## Flower on 127.0.0.1:5555 with basic auth: FLOWER_BASIC_AUTH=user:password (required).
flower: venv
	@test -n "$${FLOWER_BASIC_AUTH}" || { echo "set FLOWER_BASIC_AUTH=user:password" >&2; exit 2; }
	$(BIN)/python -m celery -A medicine_project flower --address=$${FLOWER_ADDRESS:-127.0.0.1} --port=$${FLOWER_PORT:-5555}

## Celery beat with the schedule from the database (edit it in the admin: Periodic tasks).
beat: venv
	$(BIN)/python -m celery -A medicine_project beat -l info --scheduler django_celery_beat.schedulers:DatabaseScheduler

## Reminder clips for everyone now (ARGS="--user alice --dry-run").
pregenerate: venv
	$(BIN)/python manage.py pregenerate_reminders $(ARGS)
