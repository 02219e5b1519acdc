"""The glue between Celery/Django and the speech engines in `workers/`.

- `status`: what live workers report (heartbeats, loaded model versions), in Redis, with the
  model version also kept in the database (the source of truth when Redis is down or empty).
- `runtime`: the one engine a worker process hosts for its life, and its heartbeat thread.
- `signals`: Celery signal hooks (load the engine per process, database connections per task),
  connected by `VoiceTtsConfig.ready()`.

`workers/` itself never imports Django or this app; this package is the only place that
knows both.
"""
