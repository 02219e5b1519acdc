"""gunicorn settings for the stream server: POST /v1/audio/speech (and the rest of /v1).

    gunicorn -c medicine_project/gunicorn_stream_conf.py medicine_project.wsgi

The other half of the split deployment (gunicorn_conf.py says why there are two). A /v1/audio/speech
answer streams a text sentence by sentence: each open stream holds one thread, mostly asleep in Redis (a
blocking pop on its jobs' wake-up lists, which releases the GIL) until the worker pushes that the next
sentence is ready. gthread workers: STREAM_WORKERS processes (one per core) of STREAM_THREADS (48)
threads, so 64 streams over 8 users fit on 2 cores with room left (bench/web_config.py: /api's health p99
20.5 ms on SQLite, 26.7 ms on PostgreSQL, while 64 streams ran). A gthread worker's `timeout` is only the
process' heartbeat, so a long stream is never killed for its length; a client that hangs up frees its
thread at once (voice_tts/http/disconnects.py).

Behind nginx, turn off proxy buffering for /v1/audio/speech (the view sends `X-Accel-Buffering: no`);
deploy/Caddyfile flushes /v1 at once.
"""

import os

from carepill_config import Env

env = Env()
workers = env.int("STREAM_WORKERS", os.cpu_count() or 2, minimum=1)
worker_class = "gthread"
# Open streams + the short /v1 requests (models, voices) served at once per process.
threads = env.int("STREAM_THREADS", 48, minimum=1)
# A process takes no more connections than it has threads. gthread otherwise accepts up to 1000 per process
# and queues the requests beyond its threads, so with streams spread unevenly over the processes (one took
# 50 of 64 while the other had threads free) a new request could land behind 48 open streams and wait for
# minutes. At its cap a process stops accepting, and the other one takes the connection from the shared
# listen socket (tests/test_speech_concurrent.py asks /v1/models while 64 streams are open).
worker_connections = threads
# No kept-alive connections, then: each would hold a connection slot (and gunicorn warns that none fit).
keepalive = 0
timeout = 60
max_requests = 20000
max_requests_jitter = 2000
