"""gunicorn settings for the web: `gunicorn -c medicine_project/gunicorn_conf.py medicine_project.wsgi`.

The split deployment (issue 25; bench/web_config.py, docs/openai.md "Serving"). Two gunicorn servers run
the same Django project, each tuned for one kind of request:
- this file, the **web**: sync workers, one process per core, one request at a time per process. It
  serves the pages, /api (every request short: the API never waits on a model) and the admin. Measured
  side by side, sync workers gave the short requests their best requests/s and tail; threads in one
  process contend for the GIL and stretch p99 3.5-5x on 2 cores.
- gunicorn_stream_conf.py, the **stream server**: gthread workers for POST /v1/audio/speech, which holds
  its request open while it streams a text sentence by sentence (minutes, mostly asleep in Redis).
The compose proxy (deploy/Caddyfile) routes /v1/* to the stream server and the rest here; `make run`
starts both, on two ports. A /v1 request that does reach this server is still answered (same URLconf,
same view), holding one of its processes until the answer ends.

WEB_WORKER_CLASS=gthread (WEB_THREADS per process) makes this one server hold streams too, for a
deployment that runs a single server with no proxy in front.
"""

import os

from carepill_config import Env

# carepill_config, like the settings: a typo (WEB_WORKERS=two) stops gunicorn at start, naming the
# variable, instead of a bare int()'s "invalid literal". gunicorn puts its cwd (the project root) on
# sys.path before it runs this file.
env = Env()
# One process per core; WEB_WORKERS overrides.
workers = env.int("WEB_WORKERS", os.cpu_count() or 2, minimum=1)
worker_class = env.choice("WEB_WORKER_CLASS", "sync", ["sync", "gthread"])
threads = env.int("WEB_THREADS", 48 if worker_class == "gthread" else 1, minimum=1)
keepalive = 5
timeout = 60
# Recycle workers now and then so a slow leak can never grow without bound.
max_requests = 20000
max_requests_jitter = 2000
