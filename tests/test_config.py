"""carepill_config: the one reader of the environment (settings, engines, gunicorn's config).

A typo fails loudly, naming the variable; secrets may come from files (NAME_FILE); .env.example
lists exactly the declared variables, and the code reads no variable that is not declared. The
settings and gunicorn are loaded for real in subprocesses (as a deployment starts them), the engines
through their own load().
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from carepill_config import VARIABLES, ConfigError, Env, variable_names

ROOT = Path(__file__).resolve().parent.parent
# Our own variables' prefixes and names: cleared from a subprocess' environment so that what this
# run set (tests/settings.py) cannot decide its outcome.
_CLEARED = tuple(VARIABLES) + tuple(f"{name}_FILE" for name in VARIABLES)


def clean_env(**env: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in _CLEARED and not k.startswith("DJANGO_")}
    return {**base, **env}


def settings_print(expression: str, **env: str) -> subprocess.CompletedProcess:
    """Import the real settings module in a fresh interpreter with `env` and print `expression`."""
    code = f"import medicine_project.settings as s; print(repr(({expression})))"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean_env(**env),
                          capture_output=True, text=True, timeout=60)


# --- the reader's rules ---------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["ture", "2", "enabled", "y es"])
def test_a_boolean_typo_fails_naming_the_variable_and_the_value(raw):
    with pytest.raises(ConfigError) as error:
        Env({"NEURAL_CPU_MATCH": raw}).bool("NEURAL_CPU_MATCH", True)
    assert "NEURAL_CPU_MATCH" in str(error.value) and repr(raw) in str(error.value)


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("TRUE", True), ("yes", True), (" on ", True),
                                               ("0", False), ("False", False), ("no", False), ("off", False)])
def test_booleans_accept_exactly_the_documented_spellings(raw, expected):
    assert Env({"DJANGO_DEBUG": raw}).bool("DJANGO_DEBUG", not expected) is expected


def test_empty_means_the_default_for_typed_values_but_not_for_text():
    env = Env({"WEB_WORKERS": "", "NEURAL_CPU_MATCH": " ", "TTS_ENGINE": "", "S3_REGION": ""})
    assert env.int("WEB_WORKERS", 7) == 7
    assert env.bool("NEURAL_CPU_MATCH", True) is True
    assert env.choice("TTS_ENGINE", "espeak", ["espeak", "tone"]) == "espeak"
    assert env.str("S3_REGION", "eu-west-1") == ""


@pytest.mark.parametrize(("raw", "message"), [("0", "WEB_WORKERS must be >= 1, got 0"),
                                              ("1000", "WEB_WORKERS must be <= 64, got 1000"),
                                              ("two", "WEB_WORKERS must be an integer, got 'two'"),
                                              ("2.5", "WEB_WORKERS must be an integer, got '2.5'")])
def test_integers_are_bounded(raw, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        Env({"WEB_WORKERS": raw}).int("WEB_WORKERS", 2, minimum=1, maximum=64)
    assert Env({"WEB_WORKERS": " 12 "}).int("WEB_WORKERS", 2, minimum=1, maximum=64) == 12


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "soon"])
def test_numbers_are_finite(raw):
    with pytest.raises(ConfigError, match="TONE_DELAY_SECONDS"):
        Env({"TONE_DELAY_SECONDS": raw}).float("TONE_DELAY_SECONDS", 0.0)


def test_choices_paths_and_urls_name_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="WEB_WORKER_CLASS must be one of gthread, sync; got 'gthraed'"):
        Env({"WEB_WORKER_CLASS": "gthraed"}).choice("WEB_WORKER_CLASS", "gthread", ["gthread", "sync"])
    with pytest.raises(ConfigError, match="GPTSOVITS_API_URL must be a http:// or https:// URL"):
        Env({"GPTSOVITS_API_URL": "127.0.0.1:9880"}).url("GPTSOVITS_API_URL", "", schemes=["http", "https"])
    # Relative paths are taken from the base the caller gives (the project root), never the cwd.
    env = Env({"MEDIA_ROOT": "media/x", "STATIC_ROOT": str(tmp_path)})
    assert env.path("MEDIA_ROOT", Path("m"), base=tmp_path) == tmp_path / "media/x"
    assert env.path("STATIC_ROOT", Path("s"), base=Path("/elsewhere")) == tmp_path
    assert env.path("CAREPILL_DATA_DIR", Path("var"), base=tmp_path) == tmp_path / "var"


def test_reading_an_undeclared_name_is_refused():
    # Every read goes through carepill_config/variables.py, so .env.example cannot fall behind the code.
    with pytest.raises(ConfigError, match="NEURAL_CPU_MATHC is read but not declared"):
        Env({"NEURAL_CPU_MATHC": "1"}).bool("NEURAL_CPU_MATHC", True)
    with pytest.raises(ConfigError, match="not declared secret=True"):
        Env({}).secret("LOG_LEVEL", "")


# --- secrets from files ---------------------------------------------------------------------------

SECRETS = sorted(name for name, variable in VARIABLES.items() if variable.secret)


def test_the_secrets_that_may_come_from_files():
    assert SECRETS == ["DATABASE_URL", "DJANGO_SECRET_KEY", "EMAIL_HOST_PASSWORD", "METRICS_TOKEN",
                       "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"]


@pytest.mark.parametrize(("name", "expression", "value", "expected"), [
    ("DJANGO_SECRET_KEY", "s.SECRET_KEY", "k" * 50 + "\n", "k" * 50),
    ("EMAIL_HOST_PASSWORD", "s.EMAIL_HOST_PASSWORD", "pa ss\nword\n", "pa ss\nword"),
    ("METRICS_TOKEN", "s.METRICS_TOKEN", "tok\r\n", "tok"),
    ("DATABASE_URL", "s.DATABASES['default']['HOST'], s.DATABASES['default']['PASSWORD']",
     "postgres://carepill:from-a-file@db.internal:5432/carepill\n", ("db.internal", "from-a-file")),
    ("S3_ACCESS_KEY_ID", "s.STORAGES['default']['OPTIONS']['access_key']", "AKIAFROMFILE\n", "AKIAFROMFILE"),
    ("S3_SECRET_ACCESS_KEY", "s.STORAGES['default']['OPTIONS']['secret_key']", "s3cr3t\n", "s3cr3t"),
])
def test_each_secret_may_come_from_a_file(tmp_path, name, expression, value, expected):
    secret = tmp_path / name.lower()
    secret.write_text(value)
    env = {"DJANGO_SECRET_KEY": "x" * 50, "CAREPILL_DATA_DIR": str(tmp_path / "var"),
           "STORAGE_BACKEND": "s3", "S3_BUCKET": "carepill-media", "S3_ENDPOINT_URL": "http://127.0.0.1:9"}
    env.pop(name, None)
    # What compose passes for an S3 key left empty in .env (${S3_ACCESS_KEY_ID:-}): the file still counts.
    if name.startswith("S3_"):
        env[name] = ""
    result = settings_print(expression, **env, **{f"{name}_FILE": str(secret)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == repr(expected)


@pytest.mark.parametrize("name", SECRETS)
def test_a_secret_set_both_ways_fails_naming_both(tmp_path, name):
    secret = tmp_path / "secret"
    secret.write_text("from-a-file")
    with pytest.raises(ConfigError) as error:
        Env({name: "inline", f"{name}_FILE": str(secret)}).secret(name, "")
    assert f"{name} and {name}_FILE are both set" in str(error.value)


def test_a_secret_file_that_cannot_be_read_fails_naming_it_through_the_settings(tmp_path):
    missing = tmp_path / "no-such-secret"
    result = settings_print("s.SECRET_KEY", DJANGO_SECRET_KEY_FILE=str(missing))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"DJANGO_SECRET_KEY_FILE={str(missing)!r} cannot be read" in result.stderr
    both = settings_print("s.SECRET_KEY", DJANGO_SECRET_KEY="x" * 50, DJANGO_SECRET_KEY_FILE=str(missing))
    assert "DJANGO_SECRET_KEY and DJANGO_SECRET_KEY_FILE are both set" in both.stderr


def test_a_setting_typo_fails_naming_the_variable():
    result = settings_print("s.EMAIL_USE_TLS", DJANGO_SECRET_KEY="x" * 50, EMAIL_USE_TLS="ture")
    assert result.returncode != 0
    assert "ImproperlyConfigured: EMAIL_USE_TLS must be a boolean" in result.stderr and "'ture'" in result.stderr


# --- the engines and gunicorn read through it ------------------------------------------------------


def test_neural_cpu_fails_on_a_typo_before_loading_anything(monkeypatch):
    from workers.engines.base import EngineNotReady
    from workers.engines.neural_cpu import NeuralCpuEngine

    # NEURAL_CPU_MATCH=ture used to mean "off", silently. The settings are read first in load(), so
    # this costs no model load (a cache dir that does not exist would fail later, differently).
    monkeypatch.setenv("NEURAL_CPU_CACHE_DIR", "/nonexistent/kokoro")
    monkeypatch.setenv("NEURAL_CPU_MATCH", "ture")
    with pytest.raises(EngineNotReady) as error:
        NeuralCpuEngine().load()
    assert error.value.code == "bad_config"
    assert "NEURAL_CPU_MATCH must be a boolean" in error.value.message and "'ture'" in error.value.message


def test_neural_cpu_reads_its_settings_through_the_reader(monkeypatch, tmp_path):
    from workers.engines.neural_cpu import NeuralCpuEngine, _config_read

    monkeypatch.setenv("NEURAL_CPU_MATCH", "off")
    monkeypatch.setenv("NEURAL_CPU_THREADS", "3")
    monkeypatch.setenv("NEURAL_CPU_VOICES", "jf_alpha, jm_kumo,")
    monkeypatch.delenv("NEURAL_CPU_CACHE_DIR", raising=False)
    monkeypatch.setenv("CAREPILL_DATA_DIR", str(tmp_path))
    engine = NeuralCpuEngine()
    threads, cache_dir = _config_read(engine)
    assert (threads, cache_dir) == (3, tmp_path / "models" / "kokoro")
    assert engine.match_enabled is False and engine.candidate_voices == ["jf_alpha", "jm_kumo"]


@pytest.mark.parametrize(("engine_name", "env", "code"), [
    ("tone", {"TONE_SAMPLE_RATE": "24k"}, "bad_config"),
    ("tone", {"TONE_DELAY_SECONDS": "-1"}, "bad_config"),
    # Fails before any request: no server is needed to see the typo.
    ("gpt_sovits_http", {"GPTSOVITS_API_TIMEOUT": "soon"}, "engine_bad_config"),
    ("gpt_sovits_http", {"GPTSOVITS_API_URL": "localhost:9880"}, "engine_bad_config"),
])
def test_other_engines_fail_on_a_typo_naming_the_variable(monkeypatch, engine_name, env, code):
    from workers.engines.base import EngineNotReady
    from workers.engines.registry import engine_build

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(EngineNotReady) as error:
        engine_build(engine_name).load()
    assert error.value.code == code
    assert next(iter(env)) in error.value.message


def gunicorn(*args: str, conf: str = "gunicorn_conf.py", **env: str) -> subprocess.CompletedProcess:
    """The real gunicorn (the console script the image runs) with one of the project's config files."""
    script = Path(sys.executable).with_name("gunicorn")
    return subprocess.run([str(script), *args, "-c", f"medicine_project/{conf}",
                           "medicine_project.wsgi:application"],
                          cwd=ROOT, env=clean_env(**env), capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("env", "named"), [({"WEB_WORKERS": "abc"}, "WEB_WORKERS must be an integer, got 'abc'"),
                                            ({"WEB_THREADS": "0"}, "WEB_THREADS must be >= 1, got 0"),
                                            ({"WEB_WORKER_CLASS": "gthraed"}, "WEB_WORKER_CLASS must be one of")])
def test_gunicorn_config_fails_naming_the_variable(env, named):
    result = gunicorn("--check-config", **env)
    assert result.returncode != 0
    assert named in result.stderr


def test_gunicorn_config_takes_its_values_from_the_reader(tmp_path):
    result = gunicorn("--print-config", WEB_WORKERS="3", WEB_WORKER_CLASS="sync", DJANGO_SECRET_KEY="x" * 50,
                      CAREPILL_DATA_DIR=str(tmp_path), STATIC_ROOT=str(tmp_path / "static"))
    assert result.returncode == 0, result.stderr
    printed = dict(re.findall(r"^(workers|threads|worker_class)\s+= (\S+)$", result.stdout, re.M))
    assert printed == {"workers": "3", "threads": "1", "worker_class": "sync"}


# --- .env.example and the code against the declarations --------------------------------------------

_ENV_LINE = re.compile(r"^(?:#\s*)?([A-Z][A-Z0-9_]*)=")


def example_lines() -> list[str]:
    return (ROOT / ".env.example").read_text().splitlines()


def test_env_example_lists_exactly_the_declared_variables():
    listed = [m.group(1) for line in example_lines() if (m := _ENV_LINE.match(line))]
    assert len(listed) == len(set(listed)), sorted({n for n in listed if listed.count(n) > 1})
    assert set(listed) - variable_names() == set(), "in .env.example, not declared"
    assert variable_names() - set(listed) == set(), "declared, not in .env.example"


def test_every_variable_in_env_example_has_its_own_comment():
    lines = example_lines()
    for i, line in enumerate(lines):
        if _ENV_LINE.match(line):
            above = lines[i - 1] if i else ""
            assert above.startswith("#") and not _ENV_LINE.match(above), f"no comment above {line!r}"


def test_every_declared_variable_says_what_it_does():
    for variable in VARIABLES.values():
        assert variable.help.strip() and variable.group.strip(), variable.name
        assert not variable.name.endswith("_FILE"), variable.name  # NAME_FILE comes with secret=True


_READERS = {"str", "secret", "bool", "int", "float", "list", "choice", "path", "url", "datetime", "networks", "rate"}
# The project's own code (not the tests, the benchmarks, or the Pi client, which is its own package).
_SCANNED = ["carepill_config", "medicine_project", "voice_tts", "workers", "deploy", "manage.py"]
# Plain reads of the environment outside carepill_config, each for a reason.
_PLAIN_READS_ALLOWED = {
    # The container healthcheck runs as a bare script (deploy/ is its sys.path, not the project root).
    ("deploy/healthcheck.py", "CAREPILL_HOSTNAME"),
    # `make test-compose`'s own knobs: it runs with the host's python3, before any venv, outside the service.
    ("deploy/test_compose_stack.py", "CAREPILL_COMPOSE_PROJECT"),
    ("deploy/test_compose_stack.py", "CAREPILL_COMPOSE_HEALTHY_TIMEOUT"),
}


def _python_files() -> list[Path]:
    files: list[Path] = []
    for entry in _SCANNED:
        path = ROOT / entry
        files += [path] if path.is_file() else sorted(p for p in path.rglob("*.py") if "migrations" not in p.parts)
    return files


def _env_reads() -> tuple[set[str], set[tuple[str, str]]]:
    """Names read through an Env reader (x.int("NAME", ...)) and plain os.environ/os.getenv reads by name."""
    through_reader: set[str] = set()
    plain: set[tuple[str, str]] = set()
    for path in _python_files():
        rel = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(), filename=rel)):
            literal = None
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                literal = node.args[0].value
                func = ast.unparse(node.func)
                if func in {"os.environ.get", "os.getenv", "os.environ.setdefault"}:
                    if literal != "DJANGO_SETTINGS_MODULE":  # Django's own, set by manage.py, wsgi, celery
                        plain.add((rel, literal))
                elif isinstance(node.func, ast.Attribute) and node.func.attr in _READERS and \
                        isinstance(literal, str) and re.fullmatch(r"[A-Z][A-Z0-9_]+", literal):
                    through_reader.add(literal)
            elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and \
                    ast.unparse(node.value) == "os.environ" and isinstance(node.slice, ast.Constant):
                plain.add((rel, node.slice.value))
    return through_reader, plain


def test_the_code_reads_the_environment_only_through_the_reader():
    through_reader, plain = _env_reads()
    assert plain - _PLAIN_READS_ALLOWED == set()
    assert through_reader - set(VARIABLES) == set(), "read, not declared"
    # Every variable declared as read by our code is read (through the reader, or by a reason above).
    read = through_reader | {name for _, name in _PLAIN_READS_ALLOWED}
    declared_for_code = {name for name, variable in VARIABLES.items() if variable.read_by == "code"}
    assert declared_for_code - read == set(), "declared, never read"
    # compose.yaml interpolates every compose-only variable (or hands it to the program that reads it).
    compose = (ROOT / "compose.yaml").read_text()
    for name, variable in VARIABLES.items():
        if variable.read_by == "compose":
            assert "${" + name in compose or name == "COMPOSE_PROFILES", name


def test_the_config_package_stands_alone():
    # Django-free, so the engines and gunicorn's config can use it: nothing but the standard library.
    code = ("import sys, carepill_config, carepill_config.reader, carepill_config.variables; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'django', 'voice_tts', 'workers', 'medicine_project', 'celery', 'kombu', 'numpy'}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr


def test_the_web_serves_with_sync_workers_and_the_stream_server_with_threads(tmp_path):
    common = {"DJANGO_SECRET_KEY": "x" * 50, "CAREPILL_DATA_DIR": str(tmp_path), "STATIC_ROOT": str(tmp_path / "s")}
    pattern = r"^(workers|threads|worker_class)\s+= (\S+)$"
    web = gunicorn("--print-config", WEB_WORKERS="2", **common)
    assert web.returncode == 0, web.stderr
    assert dict(re.findall(pattern, web.stdout, re.M)) == {"workers": "2", "threads": "1", "worker_class": "sync"}
    stream = gunicorn("--print-config", conf="gunicorn_stream_conf.py", STREAM_WORKERS="3", **common)
    assert stream.returncode == 0, stream.stderr
    assert dict(re.findall(pattern, stream.stdout, re.M)) == {"workers": "3", "threads": "48",
                                                               "worker_class": "gthread"}
    bad = gunicorn("--check-config", conf="gunicorn_stream_conf.py", STREAM_THREADS="none", **common)
    assert bad.returncode != 0 and "STREAM_THREADS must be an integer, got 'none'" in bad.stderr
