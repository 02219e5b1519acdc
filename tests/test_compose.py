"""compose.yaml, .env.example and the Dockerfile checked against the project itself.

What can be checked without Docker (`make test-compose` runs the stack for real, CI's own step;
docs/deployment.md): every command a service runs exists in the project, queues and the beat
scheduler match settings, the ports, volumes and healthchecks are there, every env name is one
carepill_config declares (or the postgres and Flower images read), and .env.example runs unedited
but for its secrets (tests/test_config.py checks .env.example against the declarations). A typo
in any of them fails here, in seconds, not at 3 am.
"""

from __future__ import annotations

import re
import shlex
from importlib import import_module
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.management import get_commands

from carepill_config import VARIABLES, variable_names
from workers.engines.registry import engine_names

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = {name for name, svc in SERVICES.items() if "build" in svc}
# Set by compose.yaml for the postgres and flower images themselves (never in .env, so not declared
# in carepill_config/variables.py, which lists what a deployment may set).
NOT_OURS = {"POSTGRES_DB", "POSTGRES_USER", "FLOWER_PURGE_OFFLINE_WORKERS"}


def code_env_names() -> set[str]:
    """The names our code reads (through carepill_config; tests/test_config.py checks the code against it)."""
    return {name for name, variable in VARIABLES.items() if variable.read_by == "code"}


def command(service: str) -> list[str]:
    cmd = SERVICES[service]["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else list(cmd)


def option(argv: list[str], *names: str) -> str:
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name:
                return argv[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    raise AssertionError(f"{names} not in {argv}")


def test_every_service_has_a_healthcheck_and_a_known_command():
    for name, service in SERVICES.items():
        assert "healthcheck" in service, name
        if name == "migrate":
            continue
        assert not service["healthcheck"].get("disable"), name
    commands = get_commands()
    for name in APP_SERVICES:
        argv = command(name)
        if argv[0] == "python":
            assert argv[1] == "manage.py" and argv[2] in commands, argv
        elif argv[0] == "celery":
            assert option(argv, "-A") == "medicine_project"
            import_module("medicine_project.celery")
            assert argv[3] in {"worker", "beat", "flower"}, argv
        elif argv[0] == "gunicorn":
            module, attr = argv[1].split(":")
            assert hasattr(import_module(module), attr)
            if "-c" in argv:
                assert (ROOT / option(argv, "-c")).is_file(), argv
        else:
            raise AssertionError(f"{name}: unexpected command {argv}")


def test_workers_consume_the_settings_queues_interactive_before_batch():
    consumed = set()
    for name in ("worker-gpu", "worker-cpu", "worker-io"):
        argv = command(name)
        queues = option(argv, "-Q").split(",")
        assert set(queues) <= set(settings.CELERY_QUEUES_ALL), (name, queues)
        consumed |= set(queues)
        if settings.SYNTHESIS_QUEUE in queues:
            # The -Q order is the priority order (queue_order_strategy=priority).
            assert queues.index(settings.SYNTHESIS_QUEUE) < queues.index(settings.SYNTHESIS_BATCH_QUEUE)
            assert option(argv, "-P") == "prefork"  # the engine loads in worker_process_init
            assert "-E" in argv  # task events for Flower
        node = option(argv, "-n").split("@")[0]
        assert f"{node}@$$HOSTNAME" in SERVICES[name]["healthcheck"]["test"][1]  # checks itself
    assert consumed == set(settings.CELERY_QUEUES_ALL)
    assert option(command("worker-gpu"), "-c") == "1"  # one process holds the GPU model
    assert option(command("beat"), "--scheduler") == settings.CELERY_BEAT_SCHEDULER
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["queue_order_strategy"] == "priority"


def test_gpu_worker_reserves_a_gpu_and_reads_models_read_only():
    gpu = SERVICES["worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert "./models:/app/models:ro" in gpu["volumes"]
    assert gpu["profiles"] == ["gpu"] and SERVICES["worker-cpu"]["profiles"] == ["cpu"]
    requirements = gpu["build"]["args"]["REQUIREMENTS"]
    assert (ROOT / requirements).is_file()


def test_media_is_one_shared_volume_at_media_root_for_every_app_service():
    assert set(COMPOSE["volumes"]) == {"media", "redis-data", "postgres-data", "caddy-data"}
    env = COMPOSE["x-app"]["environment"]
    for name in APP_SERVICES:
        assert f"media:{env['MEDIA_ROOT']}" in SERVICES[name]["volumes"], name
        assert SERVICES[name]["environment"]["MEDIA_ROOT"] == env["MEDIA_ROOT"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "WORKDIR /app" in dockerfile and "mkdir -p /app/media /app/var" in dockerfile
    assert env["CAREPILL_DATA_DIR"] == "/app/var"


def test_redis_keeps_every_message():
    argv = SERVICES["redis"]["command"]
    assert option(argv, "--maxmemory-policy") == "noeviction"
    assert option(argv, "--appendonly") == "yes"


def test_the_deployment_is_served_over_https():
    env = COMPOSE["x-app"]["environment"]
    assert env["DJANGO_HTTPS"] == "1" and env["DJANGO_NUM_PROXIES"] == "1"  # exactly the one proxy in front


def test_ports_match_what_the_processes_bind():
    assert option(command("web"), "--bind").endswith(":8000")
    assert SERVICES["web"]["ports"] == ["127.0.0.1:${WEB_PORT:-8000}:8000"]  # the LAN goes through proxy
    assert option(command("web-stream"), "--bind").endswith(":8000")
    assert "ports" not in SERVICES["web-stream"]  # reached only through the proxy
    assert SERVICES["proxy"]["ports"] == ["80:80", "443:443"]
    assert option(command("flower"), "--port") == "5555"
    assert SERVICES["flower"]["ports"] == ["127.0.0.1:${FLOWER_PORT:-5555}:5555"]  # not on the LAN
    assert "FLOWER_BASIC_AUTH" in SERVICES["flower"]["environment"]


def test_env_names_are_ones_something_reads():
    known = variable_names() | NOT_OURS
    in_compose = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", (ROOT / "compose.yaml").read_text()))
    for service in SERVICES.values():
        env = service.get("environment") or {}
        in_compose |= set(env) if isinstance(env, dict) else {item.split("=")[0] for item in env}
    assert in_compose - known == set()
    example = {line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines()
               if line and not line.startswith("#")}
    assert example - known == set()
    for name in ("DJANGO_SECRET_KEY", "TTS_ENGINE", "POSTGRES_PASSWORD", "FLOWER_BASIC_AUTH", "METRICS_TOKEN",
                 "STORAGE_BACKEND", "S3_BUCKET"):
        assert name in example, name
    engine = re.search(r"^TTS_ENGINE=(.*)$", (ROOT / ".env.example").read_text(), re.M).group(1)
    assert engine in engine_names()


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-s3.txt", "Dockerfile", ".env.example"])
def test_files_the_deployment_names_exist(name):
    assert (ROOT / name).is_file()


def test_s3_switch_selects_django_storages(tmp_path):
    import os
    import subprocess
    import sys

    script = ("import django; django.setup(); from django.conf import settings; "
              "print(settings.STORAGES['default']['BACKEND'], settings.STORAGES['default']['OPTIONS']['bucket_name'])")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "medicine_project.settings", "STORAGE_BACKEND": "s3",
           "S3_BUCKET": "carepill-media", "S3_ENDPOINT_URL": "http://minio:9000"}
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.split() == ["storages.backends.s3.S3Storage", "carepill-media"], out.stderr
    env.pop("S3_BUCKET")
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True)
    assert out.returncode != 0 and "S3_BUCKET must be set" in out.stderr


def test_every_app_service_takes_the_s3_settings_from_env():
    # Workers on other hosts share nothing but the database, Redis and the bucket (docs/operations.md,
    # "Scaling out"): each app service, workers included, must read the same storage settings from .env.
    names = {"STORAGE_BACKEND", "S3_BUCKET", "S3_ENDPOINT_URL", "S3_REGION", "S3_ACCESS_KEY_ID",
             "S3_SECRET_ACCESS_KEY", "S3_PREFIX", "S3_ADDRESSING_STYLE"}
    assert names <= code_env_names()
    for name in APP_SERVICES:
        env = SERVICES[name]["environment"]
        for variable in names:
            assert str(env[variable]).startswith("${" + variable + ":-"), (name, variable)
    assert "-r requirements-s3.txt" in (ROOT / "Dockerfile").read_text()  # every image can use S3


def example_env() -> dict[str, str]:
    return dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                if line and not line.startswith("#"))


def test_the_example_env_runs_unedited_on_the_cpu_profile():
    # `make test-compose` fills only the secrets: the profile it picks must run anywhere (no GPU, no
    # weights to fetch), with the engine its workers run (the web uses TTS_ENGINE in cache keys and /health).
    env = example_env()
    assert env["COMPOSE_PROFILES"] == "cpu" and SERVICES["worker-cpu"]["profiles"] == ["cpu"]
    assert env["TTS_ENGINE"] == "neural_cpu"


def test_the_web_healthcheck_asks_with_a_host_the_example_allows():
    from deploy import healthcheck

    env = example_env()
    assert SERVICES["web"]["healthcheck"]["test"] == ["CMD", "python", "deploy/healthcheck.py", "web"]
    # It sends Host: CAREPILL_HOSTNAME, the name the proxy forwards; Django must allow it.
    assert env["CAREPILL_HOSTNAME"] in env["DJANGO_ALLOWED_HOSTS"].split(",")
    assert "127.0.0.1" in env["DJANGO_ALLOWED_HOSTS"].split(",")  # the web's port on this host
    assert "CAREPILL_HOSTNAME" in (ROOT / "deploy" / "healthcheck.py").read_text()
    assert callable(healthcheck.web_check)


def test_a_synthesis_worker_is_healthy_only_with_its_engine_loaded():
    from deploy.healthcheck import engine_problem

    ready = {"hostname": "c1", "pid": 7, "engine": "neural_cpu", "ready": True}
    loading = {"hostname": "c1", "pid": 8, "engine": "neural_cpu", "ready": False, "error_code": ""}
    failed = {"hostname": "c1", "pid": 9, "engine": "neural_cpu", "ready": False, "error_code": "weights_missing"}
    other_host = {"hostname": "c2", "pid": 7, "engine": "neural_cpu", "ready": True}
    assert engine_problem([ready], hostname="c1", engine="neural_cpu") is None
    assert "starting" in engine_problem([other_host], hostname="c1", engine="neural_cpu")
    assert "loading" in engine_problem([ready, loading], hostname="c1", engine="neural_cpu")
    assert "weights_missing" in engine_problem([ready, failed], hostname="c1", engine="neural_cpu")
    assert "TTS_ENGINE" in engine_problem([ready], hostname="c1", engine="espeak")
    for name in ("worker-cpu", "worker-gpu"):
        assert SERVICES[name]["healthcheck"]["test"][1].startswith("python deploy/healthcheck.py worker ")


def test_static_files_are_readable_whatever_the_upload_permissions():
    # The image runs collectstatic as root for the app user: uploads stay private (0640), static files not.
    options = settings.STORAGES["staticfiles"].get("OPTIONS", {})
    assert settings.FILE_UPLOAD_PERMISSIONS == 0o640
    assert options["file_permissions_mode"] & 0o004 and options["directory_permissions_mode"] & 0o005 == 0o005
    # What this run's collectstatic wrote (tests/browser_assets.py): the manifest and the hashed copies
    # are the files the storage writes itself (with FILE_UPLOAD_PERMISSIONS they were 0640).
    root = Path(settings.STATIC_ROOT)
    written = [root / "staticfiles.json", *root.glob("web/app.*.css")]
    assert len(written) >= 2
    for path in written:
        assert path.stat().st_mode & 0o004, (path, oct(path.stat().st_mode))


def test_the_images_build_tools_stay_in_the_builder_stage():
    dockerfile = (ROOT / "Dockerfile").read_text()
    builder, runtime = dockerfile.split("\nFROM python:3.11-slim\n")
    assert "AS builder" in builder and "${BUILD_TOOLS}" in builder
    assert "BUILD_TOOLS" not in runtime and "COPY --from=builder /opt/venv /opt/venv" in runtime
    assert "--create-home" in runtime  # the app user owns its home (gunicorn's control socket, celery)
    assert SERVICES["worker-gpu"]["build"]["args"]["BUILD_TOOLS"] == "build-essential cmake"
    assert "BUILD_TOOLS" not in COMPOSE["x-app"]["build"].get("args", {})


# --- The split web behind the proxy (issue 25; docs/openai.md "Serving") ---------------------------

CADDYFILE = (ROOT / "deploy" / "Caddyfile").read_text()


def caddy_routes() -> list[tuple[str, str]]:
    """(path matcher or "", upstream) for each `handle` block of the Caddyfile, in order."""
    return re.findall(r"^\thandle ?(\S*) \{\n\t\treverse_proxy (\S+)", CADDYFILE, re.M)


def test_the_proxy_runs_the_caddyfile_it_mounts():
    proxy = SERVICES["proxy"]
    config = option(proxy["command"], "--config")
    assert f"./deploy/Caddyfile:{config}:ro" in proxy["volumes"]
    assert option(proxy["command"], "--adapter") == "caddyfile"
    # The site is the name .env sets, signed by Caddy's local CA.
    assert CADDYFILE.count("{$CAREPILL_HOSTNAME} {") == 1 and "\ttls internal\n" in CADDYFILE
    assert "CAREPILL_HOSTNAME" in proxy["environment"]
    assert set(proxy["depends_on"]) == {"web", "web-stream"}
    assert all(dep["condition"] == "service_healthy" for dep in proxy["depends_on"].values())


def test_the_proxy_sends_v1_to_the_stream_server_and_the_rest_to_the_web():
    assert caddy_routes() == [("/v1/*", "web-stream:8000"), ("", "web:8000")]
    stream_block = CADDYFILE[CADDYFILE.index("handle /v1/*"):CADDYFILE.index("\thandle {")]
    assert "flush_interval -1" in stream_block  # each sentence leaves at once
    assert option(command("web"), "-c") == "medicine_project/gunicorn_conf.py"
    assert option(command("web-stream"), "-c") == "medicine_project/gunicorn_stream_conf.py"
    assert SERVICES["web-stream"]["healthcheck"]["test"] == SERVICES["web"]["healthcheck"]["test"]


def test_every_openai_route_is_under_the_prefix_the_proxy_routes():
    # A new /v1 route outside /v1/ would reach the sync web and hold one of its processes.
    from django.urls import get_resolver

    def paths(patterns, prefix=""):
        for pattern in patterns:
            here = prefix + str(pattern.pattern)
            if hasattr(pattern, "url_patterns"):
                yield from paths(pattern.url_patterns, here)
            else:
                yield here

    every = list(paths(get_resolver().url_patterns))
    openai = [path for path in every if "v1" in path.split("/")[0]]
    assert openai and all(path.startswith("v1/") for path in openai), openai
    assert any("audio/speech" in path for path in openai)
