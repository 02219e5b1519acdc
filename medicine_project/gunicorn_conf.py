"""gunicorn settings for the web: `gunicorn -c medicine_project/gunicorn_conf.py medicine_project.wsgi`.

Threaded workers (gthread), one process per core, WEB_THREADS threads each. Every API request is
short (the API never waits on a model), but POST /v1/audio/speech (the OpenAI-compatible route)
holds its request open while it streams a long text sentence by sentence: up to a minute or more
of mostly sleeping between reads of its jobs' state. With sync workers (one request per process)
two such streams would take both workers of a 2-core web and every other request, health checks
included, would queue behind them; and a sync worker's `timeout` kills a request that runs longer
than it. A gthread worker serves its other threads' requests meanwhile, and its `timeout` is only
the process' heartbeat, so a long stream is never killed for its length.

Why not ASGI (uvicorn) for that route: it would be a second server and a second stack behind one
project (the rest is WSGI, the ORM and Redis calls are blocking, and DRF views are sync), for
streams that spend their time sleeping in a thread anyway; a thread per open stream is cheap at
the numbers a home deployment sees, and WEB_THREADS bounds it. (Measured on 2 cores: sync workers
were slightly faster for short requests behind nginx, bench/RESULTS.md; WEB_WORKER_CLASS=sync brings
that back for a deployment that does not use /v1/audio/speech.)

gthread also keeps client connections alive (keep-alive), which matters when clients talk to
gunicorn directly: with gunicorn >= 23 a sync worker closes every connection gracefully (waits for
the client's FIN), which cost 30-50% of requests/s against wrk here. Behind nginx, turn off proxy
buffering for /v1/audio/speech (the view sends `X-Accel-Buffering: no`).
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
# Open streams + ordinary requests served at once per process; each open stream holds one thread.
threads = env.int("WEB_THREADS", 8 if worker_class == "gthread" else 1, minimum=1)
keepalive = 5
timeout = 60
# Recycle workers now and then so a slow leak can never grow without bound.
max_requests = 20000
max_requests_jitter = 2000
