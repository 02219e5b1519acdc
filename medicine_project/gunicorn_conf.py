"""gunicorn settings for the web: `gunicorn -c medicine_project/gunicorn_conf.py medicine_project.wsgi`.

Threaded workers (gthread), one process per core, WEB_THREADS (48) threads each. Every API request is
short (the API never waits on a model), but POST /v1/audio/speech (the OpenAI-compatible route, streamed
by default) holds its request open while it streams a text sentence by sentence: up to minutes of
mostly sleeping in Redis (a blocking pop, GIL released) until the worker pushes that the next sentence is
ready. Each open stream holds one thread; the others serve the short requests. A gthread worker's
`timeout` is only the process' heartbeat, so a long stream is never killed for its length; a client that
hangs up frees its thread at once (voice_tts/http/disconnects.py).

Measured against gevent workers, a split deployment (sync workers for /api, a second server for /v1
behind the proxy) and sync workers, side by side (bench/web_config.py; docs/openai.md "Serving"): gthread
is the one server that holds 64 streams for `make run`, `make demo` and compose alike; on a quiet box its
short requests trail sync workers' (0.8-0.9x requests/s, p99 3.5-5x), which the split deployment would
avoid (not built yet). gevent blocks its whole process on SQLite's write lock (the `make run` default).
WEB_WORKER_CLASS=sync brings sync workers back for a deployment that serves no streams.

Behind nginx, turn off proxy buffering for /v1/audio/speech (the view sends `X-Accel-Buffering: no`).
"""

import os

from carepill_config import Env

# carepill_config, like the settings: a typo (WEB_WORKERS=two) stops gunicorn at start, naming the
# variable, instead of a bare int()'s "invalid literal". gunicorn puts its cwd (the project root) on
# sys.path before it runs this file.
env = Env()
# One process per core; WEB_WORKERS overrides.
workers = env.int("WEB_WORKERS", os.cpu_count() or 2, minimum=1)
worker_class = env.choice("WEB_WORKER_CLASS", "gthread", ["gthread", "sync"])
# Open streams + ordinary requests served at once per process; each open stream holds one thread, mostly
# asleep in Redis (a blocking pop, which releases the GIL). 48: 64 streams over two processes and room
# for the short requests beside them (bench/web_config.py).
threads = env.int("WEB_THREADS", 48 if worker_class == "gthread" else 1, minimum=1)
keepalive = 5
timeout = 60
# Recycle workers now and then so a slow leak can never grow without bound.
max_requests = 20000
max_requests_jitter = 2000
