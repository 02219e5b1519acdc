# CarePill Voice. `make demo` and `make test` need nothing but Python 3.11+.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# PostgreSQL used by `make test` for its second pass (the suite runs on both databases).
TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test
# Demo and dev runs get a throwaway secret when none is set; production must set one.
SECRET = $${DJANGO_SECRET_KEY:-$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(50))')}

GPU_VENV ?= .venv-gpu
GPU_BIN := $(GPU_VENV)/bin

.PHONY: demo run web web-stream worker beat soak worker-gpu test test-sqlite test-postgres test-gpu test-compose test-compose-gpu-image lint venv venv-gpu clean flower pregenerate assets

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-adapt.txt requirements-dev.txt requirements-s3.txt clients/pi/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt -r requirements-adapt.txt
	$(BIN)/pip install -q -e clients/pi
	touch $@

# The GPT-SoVITS stack lives in its own venv: it pins numpy<2 and must never reach the web.
venv-gpu: $(GPU_VENV)/.installed

$(GPU_VENV)/.installed: requirements.txt requirements-dev.txt requirements-s3.txt requirements-gpu.txt
	$(PYTHON) -m venv $(GPU_VENV)
	$(GPU_BIN)/pip install -q --upgrade pip
	$(GPU_BIN)/pip install -q torch==2.13.0
	$(GPU_BIN)/pip install -q -r requirements-gpu.txt -r requirements-dev.txt
	touch $@

## The pages' messages (gettext's msgfmt) and static files (STATIC_ROOT, served by whitenoise).
## The tests build both themselves (tests/browser_assets.py).
## Without msgfmt (Debian's gettext) the pages still work, in their English source text: say so, go on.
assets: venv
	@if command -v msgfmt >/dev/null 2>&1; then \
	  DJANGO_SECRET_KEY=$(SECRET) $(BIN)/python manage.py compilemessages --ignore '.venv*' --ignore clients -v 0; \
	else echo "warning: msgfmt not found (apt-get install gettext): the pages at /voice/ will be in English, not Korean"; fi
	DJANGO_SECRET_KEY=$(SECRET) $(BIN)/python manage.py collectstatic --noinput -v 0

## The whole path on embedded defaults: Redis (local or embedded), worker, web, three reminders.
demo: assets
	DJANGO_SECRET_KEY=$(SECRET) $(BIN)/python manage.py demo

## Web (:8000), /v1 stream server (:8001), worker and beat in the foreground for real use (set DJANGO_SECRET_KEY, or DJANGO_DEBUG=1 locally).
run: assets
	$(BIN)/python manage.py runstack

web: assets
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python -m gunicorn medicine_project.wsgi:application -c medicine_project/gunicorn_conf.py --bind $${WEB_BIND:-127.0.0.1:8000}

## The /v1 stream server alone (gthread; STREAM_BIND, STREAM_WORKERS, STREAM_THREADS).
web-stream: assets
	$(BIN)/python -m gunicorn medicine_project.wsgi:application -c medicine_project/gunicorn_stream_conf.py --bind $${STREAM_BIND:-127.0.0.1:8001}

worker: venv
	$(BIN)/python -m celery -A medicine_project worker -l info

## One GPU worker: one process (-c 1), one model, the synthesis queue; GPU=N picks the card.
worker-gpu: venv-gpu
	CUDA_VISIBLE_DEVICES=$${GPU:-0} TTS_ENGINE=gpt_sovits $(GPU_BIN)/python -m celery -A medicine_project worker \
	  -Q $${SYNTHESIS_QUEUE:-synthesis} -P prefork -c 1 --max-tasks-per-child $${GPU_MAX_TASKS_PER_CHILD:-500} \
	  --max-memory-per-child $${GPU_MAX_MEMORY_PER_CHILD_KB:-12000000} -n gpu$${GPU:-0}@%h -l info

beat: venv
	$(BIN)/python -m celery -A medicine_project beat -l info

## Load without loss: clients x jobs against a private stack, with a worker kill and a Redis restart.
soak: venv
	$(BIN)/python bench/soak.py

## ruff, then the import-linter contracts in pyproject.toml (layers, no layer skipped, workers/ never imports Django).
lint: venv
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/vermin --target=3.9- --violations --no-tips --eval-annotations clients/pi/carepill_voice

test-sqlite: venv
	DATABASE_URL= $(BIN)/python -m pytest -m "not gpu_stack"

test-postgres: venv
	DATABASE_URL=$(TEST_POSTGRES_URL) $(BIN)/python -m pytest -m "not gpu_stack"

## The GPT-SoVITS engines with a tiny random-weight model, on CPU (CI's own step).
test-gpu: venv-gpu
	DATABASE_URL= $(GPU_BIN)/python -m pytest tests/gpu_stack -m gpu_stack

## The compose deployment for real (docs/deployment.md; CI's own step, as root): a Docker engine and the
## compose plugin (installed if missing), the base images (stand-ins where no registry answers,
## deploy/standins/), then build, up (cpu profile), HTTPS checks through Caddy, down/up, down -v.
## Independent of `make test` and of the venv (the host's python3, standard library only).
test-compose:
	bash deploy/docker_engine.sh
	bash deploy/standins/build.sh
	$(PYTHON) deploy/test_compose_stack.py stack

## The GPU worker's image (CUDA torch from PyPI, pyopenjtalk compiled in the builder stage): built as
## compose builds it, GPT_SoVITS imported inside it, no compiler left in it. No GPU needed. CI's next step.
test-compose-gpu-image:
	bash deploy/docker_engine.sh
	bash deploy/standins/build.sh
	$(PYTHON) deploy/test_compose_stack.py gpu-image

## Lint, then the whole suite on SQLite and on PostgreSQL.
test: lint test-sqlite test-postgres

clean:
	rm -rf $(VENV) var media/demo

## Flower on 127.0.0.1:5555 with basic auth: FLOWER_BASIC_AUTH=user:password (required).
flower: venv
	@test -n "$${FLOWER_BASIC_AUTH}" || { echo "set FLOWER_BASIC_AUTH=user:password" >&2; exit 2; }
	$(BIN)/python -m celery -A medicine_project flower --address=$${FLOWER_ADDRESS:-127.0.0.1} --port=$${FLOWER_PORT:-5555}

## Reminder clips for everyone now (ARGS="--user alice --dry-run").
pregenerate: venv
	$(BIN)/python manage.py pregenerate_reminders $(ARGS)
