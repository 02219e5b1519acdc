"""`make test-compose` (steps 1-5) and `make test-compose-gpu-image` (step 6): the compose deployment,
for real, as a new user runs it (docs/deployment.md).

    python3 deploy/test_compose_stack.py [stack|gpu-image]

Run after deploy/docker_engine.sh (a daemon and `docker compose`) and deploy/standins/build.sh
(the base images). Standard library only: it runs with the host's python3, before any venv.

1. The working tree (git's files, as a fresh clone has them) is copied to a temporary directory,
   and its `.env` is `.env.example` with only the three secrets filled.
2. `docker compose build`, then `docker compose up -d --build` (the profile .env.example picks:
   cpu), and every service of that profile must turn healthy (migrate: exit 0).
3. Through the Caddy proxy over HTTPS (127.0.0.1:443 as CAREPILL_HOSTNAME), trusting Caddy's own
   root certificate as the docs say: log in, enrol a voice, a job succeeds and its MP3 decodes,
   /v1/audio/speech answers audio, the proxy routes /v1 to `web-stream` and the rest to `web` (read
   from each server's access log), four streams at once all deliver while /api answers, and failed
   logins lock out the client's address (not Caddy's, and not one the client claims in X-Forwarded-For).
4. `down`, `up -d`: the user, the voice and the job's audio are still there (the volumes).
5. `down -v`: no container, volume or network of the project is left.
6. `gpu-image` (make test-compose-gpu-image, CI's next step): the GPU image (compose's worker-gpu
   build, no GPU needed) is built, GPT_SoVITS imports in it, and it holds no compiler.
It prints its timings at the end; any failure prints the services' state and logs, and still
takes the stack down.
"""

from __future__ import annotations

import http.client
import io
import json
import math
import os
import re
import secrets
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import wave
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROJECT = os.environ.get("CAREPILL_COMPOSE_PROJECT", "carepill-ci")
HEALTHY_TIMEOUT_S = float(os.environ.get("CAREPILL_COMPOSE_HEALTHY_TIMEOUT", "480"))
JOB_TIMEOUT_S = 180.0
SECRETS = ("DJANGO_SECRET_KEY", "POSTGRES_PASSWORD", "FLOWER_BASIC_AUTH")
CADDY_ROOT = "/data/caddy/pki/authorities/local/root.crt"
GPU_IMPORT_CHECK = (
    "import os, tempfile; os.environ['GPT_SOVITS_DATA_DIR'] = tempfile.mkdtemp(); "
    "from gpt_sovits_cpufast.runtime import configure_runtime; configure_runtime(); "
    "import GPT_SoVITS, torch; from TTS_infer_pack.TTS import TTS, TTS_Config; "
    "print('GPT_SoVITS', GPT_SoVITS.__file__, 'torch', torch.__version__, 'cuda build', torch.version.cuda)"
)


DOCKER = shutil.which("docker") or "/usr/bin/docker"
GIT = shutil.which("git") or "/usr/bin/git"


def docker(*args: str) -> str:
    """`docker ARGS`' stdout (text); raises on failure."""
    return subprocess.run([DOCKER, *args], check=True, capture_output=True, text=True).stdout


def log(message: str) -> None:
    print(f"[test-compose] {message}", flush=True)


class Failure(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failure(message)


class Compose:
    """`docker compose -p PROJECT` in the copied tree (its compose.yaml and .env)."""

    def __init__(self, directory: Path, project: str) -> None:
        self.directory = directory
        self.project = project

    def run(self, *args: str, check: bool = True, capture: bool = False, stdin: bytes | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        argv = [DOCKER, "compose", "-p", self.project, *args]
        result = subprocess.run(argv, cwd=self.directory, input=stdin, capture_output=capture,
                                env={**os.environ, **(env or {})})
        if check and result.returncode != 0:
            detail = result.stderr.decode(errors="replace")[-3000:] if capture else ""
            raise Failure(f"`{' '.join(argv)}` exited {result.returncode} {detail}")
        return result

    def out(self, *args: str) -> str:
        return self.run(*args, capture=True).stdout.decode()

    def exec_web(self, *argv: str, stdin: bytes | None = None) -> str:
        return self.out("exec", "-T", "web", *argv) if stdin is None else \
            self.run("exec", "-T", "web", *argv, capture=True, stdin=stdin).stdout.decode()

    def services(self) -> list[str]:
        return self.out("config", "--services").split()

    def containers(self) -> list[dict[str, Any]]:
        raw = self.out("ps", "-a", "--format", "json").strip()
        if not raw:
            return []
        if raw.startswith("["):
            return json.loads(raw)
        return [json.loads(line) for line in raw.splitlines() if line.strip()]


def copy_tree(dest: Path) -> None:
    """The files a fresh clone has (tracked, plus new files git does not ignore): never .env or venvs."""
    files = subprocess.run([GIT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True).stdout.split(b"\0")
    for name in filter(None, files):
        source = ROOT / name.decode()
        if source.is_file():
            target = dest / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def env_from_example(directory: Path) -> dict[str, str]:
    """.env = .env.example with only the secrets filled; returns them."""
    values = {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
              "FLOWER_BASIC_AUTH": "admin:" + secrets.token_urlsafe(16)}
    lines = (directory / ".env.example").read_text().splitlines()
    changed = 0
    out = []
    for line in lines:
        name = line.split("=", 1)[0]
        if name in values and not line.startswith("#"):
            line = f"{name}={values[name]}"
            changed += 1
        out.append(line)
    check(changed == len(SECRETS), f".env.example must name each of {SECRETS} once")
    (directory / ".env").write_text("\n".join(out) + "\n")
    return dict(line.split("=", 1) for line in out if "=" in line and not line.startswith("#"))


def wait_healthy(compose: Compose, started: float) -> float:
    """Seconds from `started` until every service of the active profiles is healthy (migrate: exit 0)."""
    expected = set(compose.services())
    last = ""
    while True:
        containers = {c["Service"]: c for c in compose.containers()}
        states = {}
        for name in sorted(expected):
            c = containers.get(name)
            if c is None:
                states[name] = "missing"
            elif name == "migrate":
                states[name] = "done" if c["State"] == "exited" and c.get("ExitCode") == 0 else c["State"]
                failed = c["State"] == "exited" and c.get("ExitCode") != 0
                check(not failed, f"migrate failed: exit {c.get('ExitCode')}")
            else:
                states[name] = c.get("Health") or c["State"]
                check(c["State"] not in ("exited", "dead"), f"{name} {c['State']} (exit {c.get('ExitCode')})")
        summary = " ".join(f"{k}={v}" for k, v in states.items())
        if summary != last:
            log(f"{time.monotonic() - started:5.0f}s {summary}")
            last = summary
        if all(v in ("healthy", "done") for v in states.values()):
            return time.monotonic() - started
        check(time.monotonic() - started < HEALTHY_TIMEOUT_S, f"not healthy after {HEALTHY_TIMEOUT_S:.0f} s: {summary}")
        time.sleep(2)


class Https:
    """HTTPS to the proxy on 127.0.0.1:443 for `hostname` (SNI and Host), trusting only `cafile`."""

    def __init__(self, hostname: str, cafile: Path, address: str = "127.0.0.1", port: int = 443) -> None:
        self.hostname, self.address, self.port = hostname, address, port
        self.context = ssl.create_default_context(cafile=str(cafile))

    def request(self, method: str, path: str, *, body: bytes | None = None, data: Any = None,
                headers: dict[str, str] | None = None, token: str | None = None,
                timeout: float = 120) -> tuple[int, dict[str, str], bytes]:
        headers = dict(headers or {})
        if data is not None:
            body = json.dumps(data).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Token {token}"
        sock = socket.create_connection((self.address, self.port), timeout=timeout)
        conn = http.client.HTTPSConnection(self.hostname, self.port, timeout=timeout, context=self.context)
        conn.sock = self.context.wrap_socket(sock, server_hostname=self.hostname)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, expect: int | tuple[int, ...], **kwargs: Any) -> Any:
        status, _, body = self.request(method, path, **kwargs)
        expected = (expect,) if isinstance(expect, int) else expect
        check(status in expected, f"{method} {path}: {status} (expected {expect}) {body[:500]!r}")
        return json.loads(body) if body else None


def reference_wav(seconds: float = 5.0, rate: int = 24000) -> bytes:
    """A voice-like recording made here (tests/voice_signals.py's harmonic vowel, in pure Python)."""
    f0, formants = 140.0, (700.0, 1200.0, 2600.0)
    gains = [(k, (sum(1.0 / (1.0 + ((k * f0 - fc) / 120.0) ** 2) for fc in formants) + 0.02) / k**0.5)
             for k in range(1, int(4000 / f0))]
    samples, phase = [], 0.0
    for i in range(int(seconds * rate)):
        t = i / rate
        phase += 2 * math.pi * f0 * (1.0 + 0.03 * math.sin(2 * math.pi * 5.0 * t)) / rate
        envelope = 0.55 + 0.45 * math.sin(2 * math.pi * 3.0 * t) ** 2
        samples.append(envelope * sum(g * math.sin(k * phase) for k, g in gains))
    peak = max(abs(s) for s in samples)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(struct.pack("<h", int(16000 * s / peak)) for s in samples))
    return buffer.getvalue()


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, content, ctype) in files.items():
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                f"Content-Type: {ctype}\r\n\r\n")
        parts.append(head.encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def decode_audio(compose: Compose, data: bytes) -> tuple[int, int]:
    """(frames, sample rate) of `data`, decoded by the image's own soundfile (libsndfile)."""
    script = ("import io, sys, soundfile; d, sr = soundfile.read(io.BytesIO(sys.stdin.buffer.read())); "
              "print(len(d), sr)")
    frames, rate = compose.exec_web("python", "-c", script, stdin=data).split()
    return int(frames), int(rate)


def wait_job(https: Https, token: str, job: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while job["status"] not in ("succeeded", "failed"):
        check(time.monotonic() < deadline, f"job {job['id']} still {job['status']} after {JOB_TIMEOUT_S:.0f} s")
        time.sleep(0.5)
        job = https.json("GET", f"/api/tts/jobs/{job['id']}/", 200, token=token)
    check(job["status"] == "succeeded", f"job failed: {job.get('error')}")
    return job


def first_run(compose: Compose, https: Https, user: dict[str, str], timings: dict[str, float]) -> dict[str, Any]:
    health = https.json("GET", "/api/tts/health/", 200)
    check(health["status"] == "ok", f"/api/tts/health/ says {health}")
    log(f"health: {health['status']}, engine {health['engine']} on {health['device']}")
    status, _, page = https.request("GET", "/voice/login/")
    asset = re.search(rb'/static/[^"\'?#]+', page)
    check(status == 200 and asset is not None, f"/voice/login/: {status}, no static asset named")
    static_status = https.request("GET", asset.group().decode())[0]
    check(static_status == 200, f"{asset.group().decode()}: {static_status}")
    noise = [line for line in compose.out("logs", "--no-log-prefix", "web").splitlines()
             if "Permission denied" in line or "PermissionError" in line or "Control server error" in line]
    check(not noise, f"the web logs permission errors: {noise[:3]}")
    log(f"pages: /voice/login/ and {asset.group().decode()} served (static files readable); no permission errors")
    token = https.json("POST", "/api/auth/login/", 200, data=user)["token"]
    log("login: token issued")

    body, ctype = multipart({"language": "ko"}, {"voice_file": ("reference.wav", reference_wav(), "audio/wav")})
    voice = https.json("POST", "/api/tts/voices/", 201, body=body, headers={"Content-Type": ctype}, token=token)
    log(f"voice enrolled: {voice['id']} ({voice['duration_seconds']} s)")

    started = time.monotonic()
    job = https.json("POST", "/api/tts/jobs/", (200, 202), data={"text": "약 드실 시간이에요.", "language": "ko"},
                     token=token)
    check(job.get("id") is not None, f"a new voice's first job cannot be a cache hit: {job}")
    job = wait_job(https, token, job)
    timings["first job (queued to succeeded)"] = time.monotonic() - started
    status, headers, mp3 = https.request("GET", f"/api/tts/jobs/{job['id']}/audio/?format=mp3", token=token)
    check(status == 200 and headers.get("content-type", "").startswith("audio/mpeg"),
          f"job audio: {status} {headers.get('content-type')}")
    frames, rate = decode_audio(compose, mp3)
    check(frames / rate > 0.3, f"the job's MP3 decodes to {frames} frames at {rate} Hz")
    log(f"job {job['id']}: succeeded; MP3 {len(mp3)} bytes decodes to {frames / rate:.2f} s at {rate} Hz")

    models = https.json("GET", "/v1/models", 200, headers={"Authorization": f"Bearer {token}"})
    model = models["data"][0]["id"]
    status, headers, speech = https.request(
        "POST", "/v1/audio/speech", body=json.dumps({"model": model, "input": "안녕하세요. 오늘도 좋은 하루 되세요.",
                                                     "voice": "alloy", "response_format": "wav"}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    check(status == 200, f"/v1/audio/speech: {status} {speech[:300]!r}")
    frames, rate = decode_audio(compose, speech)
    check(frames / rate > 0.3, f"/v1/audio/speech decodes to {frames} frames at {rate} Hz")
    log(f"/v1/audio/speech ({model}): {len(speech)} bytes of WAV, {frames / rate:.2f} s at {rate} Hz")
    return {"token": token, "voice": voice["id"], "job": job["id"], "mp3": mp3}


def split_routing(compose: Compose, https: Https, token: str) -> None:
    """The split web behind Caddy (deploy/Caddyfile): /v1 reaches web-stream (gthread), the rest web (sync),
    told apart by a marker in the query string that each server's access log shows."""
    v1_mark, api_mark = f"v1probe{secrets.token_hex(4)}", f"apiprobe{secrets.token_hex(4)}"
    https.json("GET", f"/v1/models?{v1_mark}", 200, headers={"Authorization": f"Bearer {token}"})
    https.json("GET", f"/api/tts/health/?{api_mark}", (200, 503))
    stream_log = compose.out("logs", "--no-log-prefix", "web-stream")
    web_log = compose.out("logs", "--no-log-prefix", "web")
    check(v1_mark in stream_log and v1_mark not in web_log, "GET /v1/models did not reach web-stream alone")
    check(api_mark in web_log and api_mark not in stream_log, "GET /api/tts/health/ did not reach web alone")
    log("proxy: /v1 served by web-stream, /api by web (their access logs)")

    # Four streams at once, each several sentences, while /api keeps answering through the same proxy.
    results: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def one(n: int) -> None:
        text = f"{n}번 약을 드세요. 물과 함께 드세요. 드신 뒤에 버튼을 눌러 주세요."
        status, _, body = https.request(
            "POST", "/v1/audio/speech", body=json.dumps({"model": "tts-1", "input": text, "voice": "alloy",
                                                         "response_format": "wav"}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}, timeout=300)
        with lock:
            results.append((status, body))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    health = [https.request("GET", "/api/tts/health/")[0] for _ in range(5)]
    for thread in threads:
        thread.join(timeout=360)
    check(all(status in (200, 503) for status in health), f"/api/tts/health/ beside the streams: {health}")
    check(len(results) == 4 and all(status == 200 for status, _ in results),
          f"four streams: {[(status, body[:200]) for status, body in results]}")
    for _, body in results:
        frames, rate = decode_audio(compose, body)
        check(frames / rate > 1.0, f"a stream decodes to {frames} frames at {rate} Hz")
    log(f"four /v1 streams at once through the proxy: all decode; /api health answered {health} beside them")


def login_throttle(compose: Compose, https: Https) -> None:
    """Failed logins through the proxy count against the client's address as Caddy saw it (here the
    Docker network's gateway: the host), never Caddy's own address or a forged X-Forwarded-For."""
    network = f"{PROJECT}_default"
    gateway = docker("network", "inspect", network, "-f", "{{(index .IPAM.Config 0).Gateway}}").strip()
    proxy_id = compose.out("ps", "-q", "proxy").strip()
    proxy_ip = docker("inspect", proxy_id, "-f",
                      f"{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}").strip()
    forged = "203.0.113.77"
    name = f"intruder-{secrets.token_hex(4)}"
    statuses = []
    for _ in range(6):  # LOGIN_FAILURES_PER_USER_IP = 5
        status, _, _ = https.request("POST", "/api/auth/login/", body=json.dumps({"username": name, "password": "x"})
                                     .encode(), headers={"Content-Type": "application/json", "X-Forwarded-For": forged})
        statuses.append(status)
    check(statuses == [400] * 5 + [429], f"failed logins answered {statuses}, expected five 400 then 429")
    events = [json.loads(line[line.index("{"):]) for line in compose.out("logs", "--no-log-prefix", "web")
              .splitlines() if '"login_locked"' in line and name in line]
    check(len(events) == 1, f"expected one login_locked event for {name}, got {events}")
    address = events[0]["address"]
    check(address not in (proxy_ip, forged), f"locked address {address} is the proxy's ({proxy_ip}) or the forged one")
    check(address == gateway, f"locked address {address} is not the client's ({gateway}, the host on {network})")
    keys = compose.out("exec", "-T", "redis", "redis-cli", "--scan", "--pattern", "carepill:login:fail:ip:*").split()
    check(f"carepill:login:fail:ip:{gateway}" in keys and not any(k.endswith(proxy_ip) for k in keys),
          f"per-address counters {keys}")
    log(f"login throttle: 5 failures then 429; locked address {address} (the client), not the proxy {proxy_ip} "
        f"nor the forged {forged}")


def after_restart(compose: Compose, https: Https, user: dict[str, str], state: dict[str, Any]) -> None:
    token = https.json("POST", "/api/auth/login/", 200, data=user)["token"]  # the user: postgres-data
    voices = https.json("GET", "/api/tts/voices/", 200, token=token)["results"]
    check([v["id"] for v in voices] == [state["voice"]], f"voices after restart: {voices}")
    status, _, mp3 = https.request("GET", f"/api/tts/jobs/{state['job']}/audio/?format=mp3", token=token)
    check(status == 200 and mp3 == state["mp3"], f"the job's audio after restart: {status}, {len(mp3)} bytes")
    old = https.request("GET", "/api/tts/voices/", token=state["token"])[0]  # the first token still works
    check(old == 200, f"the token issued before the restart: {old}")
    log("after down/up: the user, the voice, the job's audio (media volume) and the old token are all there")


def leftovers(project: str) -> list[str]:
    found = []
    for kind in ("ps -a", "volume ls", "network ls"):
        out = docker(*kind.split(), "-q", "--filter", f"label=com.docker.compose.project={project}").split()
        found += [f"{kind.split()[0]} {item}" for item in out]
    return found


def image_size(tag: str) -> str:
    size = docker("image", "inspect", tag, "-f", "{{.Size}}").strip()
    return f"{int(size) / 1e9:.2f} GB"


def gpu_image(compose: Compose, timings: dict[str, float]) -> str:
    """compose's worker-gpu build (no GPU needed), then GPT_SoVITS imported inside the image and no
    compiler in it; returns the image's tag."""
    started = time.monotonic()
    compose.run("--profile", "gpu", "build", "worker-gpu")
    timings["GPU image build"] = time.monotonic() - started
    config = json.loads(compose.out("--profile", "gpu", "config", "--format", "json"))
    tag = config["services"]["worker-gpu"]["image"]
    out = subprocess.run([DOCKER, "run", "--rm", "--entrypoint", "python", tag, "-c", GPU_IMPORT_CHECK],
                         capture_output=True, text=True)
    check(out.returncode == 0, f"GPT_SoVITS does not import in {tag}: {out.stderr[-2000:]}")
    tools = docker("run", "--rm", "--entrypoint", "sh", tag, "-c", "command -v gcc cc cmake make || true").split()
    check(not tools, f"build tools in the GPU runtime image: {tools}")
    log(f"GPU image {tag}: {out.stdout.strip()}; no compiler in it; {image_size(tag)}")
    return tag


def prepared(work: Path) -> tuple[Compose, dict[str, str]]:
    copy_tree(work)
    env = env_from_example(work)
    log(f"tree copied to {work}; .env = .env.example + secrets (COMPOSE_PROFILES={env.get('COMPOSE_PROFILES')}, "
        f"TTS_ENGINE={env.get('TTS_ENGINE')})")
    return Compose(work, PROJECT), env


def stack(work: Path, timings: dict[str, float]) -> bool:
    """Steps 1-5: the CPU profile's stack, up, checked, restarted, and taken down."""
    compose = Compose(work, PROJECT)
    check(not leftovers(PROJECT), f"project {PROJECT} already has containers or volumes: {leftovers(PROJECT)}")
    ok = False
    try:
        compose, env = prepared(work)
        check(env.get("COMPOSE_PROFILES") == "cpu", ".env.example must pick the cpu profile (runs on any host)")
        started = time.monotonic()
        compose.run("build")
        timings["CPU image build"] = time.monotonic() - started
        started = time.monotonic()
        compose.run("up", "-d", "--build")
        timings["cold up to all healthy"] = wait_healthy(compose, started)

        user = {"username": "caregiver", "password": secrets.token_urlsafe(16)}
        compose.run("exec", "-T", "-e", f"DJANGO_SUPERUSER_PASSWORD={user['password']}", "web", "python", "manage.py",
                    "createsuperuser", "--noinput", "--username", user["username"], "--email",
                    "caregiver@example.invalid")
        cafile = work / "carepill-root.crt"
        cafile.write_bytes(compose.run("exec", "-T", "proxy", "cat", CADDY_ROOT, capture=True).stdout)
        https = Https(env["CAREPILL_HOSTNAME"], cafile)
        state = first_run(compose, https, user, timings)
        split_routing(compose, https, state["token"])
        login_throttle(compose, https)

        compose.run("down")
        started = time.monotonic()
        compose.run("up", "-d")
        timings["warm up after down"] = wait_healthy(compose, started)
        after_restart(compose, https, user, state)
        log(f"image size: carepill-voice:latest {image_size('carepill-voice:latest')}")
        ok = True
    except Failure as exc:
        log(f"FAILED: {exc}")
    except Exception as exc:  # noqa: BLE001 - any error fails the run, after the stack is taken down
        log(f"FAILED: {type(exc).__name__}: {exc}")
    finally:
        if not ok:
            compose.run("ps", "-a", check=False)
            compose.run("logs", "--no-color", "--tail", "60", check=False)
        compose.run("down", "-v", "--remove-orphans", check=False)
        # compose builds the one image once per app service (each labelled with its service): keep
        # the tagged one, drop the untagged copies.
        subprocess.run([DOCKER, "image", "prune", "-f", "--filter", f"label=com.docker.compose.project={PROJECT}"],
                       capture_output=True)
    left = leftovers(PROJECT)
    if left:
        log(f"FAILED: left after down -v: {left}")
        return False
    log("down -v: no container, volume or network left")
    return ok


def main(argv: list[str]) -> int:
    """`stack` (default): steps 1-5; `gpu-image`: step 6 (make test-compose-gpu-image)."""
    mode = argv[0] if argv else "stack"
    if mode not in ("stack", "gpu-image"):
        print(__doc__, file=sys.stderr)
        return 2
    timings: dict[str, float] = {}
    work = Path(tempfile.mkdtemp(prefix="carepill-compose-"))
    try:
        if mode == "stack":
            ok = stack(work, timings)
        else:
            compose, _ = prepared(work)
            gpu_image(compose, timings)
            ok = True
    except Failure as exc:
        log(f"FAILED: {exc}")
        ok = False
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name, seconds in timings.items():
        log(f"time: {name}: {seconds:.0f} s")
    log("PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
