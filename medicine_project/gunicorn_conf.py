"""gunicorn settings for the web: `gunicorn -c medicine_project/gunicorn_conf.py medicine_project.wsgi`.

Measured on a 2-core machine (bench/api_latency.py, bench/RESULTS.md): sync workers, one per
core, beat more workers and gthread on both throughput and p99. Every request is short (the
API never waits on a model; /generate/ waits at most GENERATE_WAIT_MAX_SECONDS), so a sync
worker is never tied up for long. Put nginx (or another buffering proxy) in front: sync workers
must not be exposed to slow clients.
"""

import os

# One sync worker per core; WEB_WORKERS overrides (e.g. when /generate/ long-waits are common).
workers = int(os.environ.get("WEB_WORKERS") or os.cpu_count() or 2)
# WEB_WORKER_CLASS=gthread (+ WEB_THREADS, keep-alive) when clients talk to gunicorn directly and
# reuse connections: with gunicorn >= 23 a sync worker closes every connection gracefully (waits
# for the client's FIN), which cost 30-50% of requests/s against wrk here; behind nginx (no
# upstream keep-alive by default) sync is the simpler, equally fast choice.
worker_class = os.environ.get("WEB_WORKER_CLASS") or "sync"
threads = int(os.environ.get("WEB_THREADS") or (4 if worker_class == "gthread" else 1))
keepalive = 5
timeout = 60
# Recycle workers now and then so a slow leak can never grow without bound.
max_requests = 20000
max_requests_jitter = 2000
