"""gunicorn config for bench/api_latency.py's SQL counting pass: the app's own settings plus a counter.

    gunicorn -c bench/gunicorn_count_sql.py medicine_project.wsgi:application   # cwd = the app's checkout

It first runs the app's medicine_project/gunicorn_conf.py (BENCH_APP_GUNICORN_CONF, else the one
under the working directory) so the workers are configured as in production, then adds a
`post_worker_init` hook (chained after the app's own, if it has one). In each worker, once Django
is loaded, every database connection gets two counters, both written to a Redis hash
(BENCH_SQL_REDIS_URL, BENCH_SQL_KEY) as `<level>:<KEYWORD>` -> count (and, in `<key>:app`, the
checkout each worker imported the app from):

  - `django:` a wrapper in `connection.execute_wrappers`: every statement sent through a Django
    cursor (the ORM, `connection.cursor()`), by its leading keyword (SELECT, INSERT, SAVEPOINT ...);
  - `db:` what reached the driver: SQLite's trace callback (every statement the engine ran,
    BEGIN/COMMIT included), or for PostgreSQL psycopg's Cursor.execute/executemany plus
    Connection.commit/rollback (counted as COMMIT/ROLLBACK). It also sees statements that
    bypass Django's cursor wrapper (raw driver cursors, CONN_HEALTH_CHECKS' `SELECT 1`).

Nothing here imports the app's modules, so it serves any version of the app unchanged. The
counter costs a Redis round trip per statement: use it only for the untimed counting pass.
"""

import os
import re
from pathlib import Path

_APP_CONF = Path(os.environ.get("BENCH_APP_GUNICORN_CONF") or Path.cwd() / "medicine_project" / "gunicorn_conf.py")
if _APP_CONF.exists():
    exec(compile(_APP_CONF.read_text(), str(_APP_CONF), "exec"))  # noqa: S102 - the app's own config

_app_post_worker_init = globals().get("post_worker_init")
_KEYWORD = re.compile(r"[\s(]*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*([A-Za-z]+)", re.S)


_CTE_WRITE = re.compile(r"\b(INSERT|UPDATE|DELETE)\b", re.I)


def _keyword(sql: object) -> str:
    """The statement's leading keyword; a WITH also names the writes in it ("WITH UPDATE INSERT")."""
    text = sql.decode(errors="replace") if isinstance(sql, bytes) else str(sql)
    match = _KEYWORD.match(text)
    if not match:
        return "?"
    word = match.group(1).upper()
    if word == "WITH":  # a data-modifying CTE is a write: `WITH u AS (UPDATE ...) INSERT ...`
        writes = [w.upper() for w in _CTE_WRITE.findall(text, match.end())]
        return " ".join(["WITH", *writes])
    return word


def _install_counters() -> None:
    import redis
    from django.db import connections
    from django.db.backends.signals import connection_created

    client = redis.Redis.from_url(os.environ["BENCH_SQL_REDIS_URL"])
    key = os.environ["BENCH_SQL_KEY"]

    def count(level: str, sql: object) -> None:
        client.hincrby(key, f"{level}:{_keyword(sql)}", 1)

    def django_wrapper(execute, sql, params, many, context):  # noqa: ANN001, ANN202 - Django's signature
        count("django", sql)
        return execute(sql, params, many, context)

    def attach(sender: object = None, connection: object = None, **kwargs: object) -> None:
        wrappers = connection.execute_wrappers
        if django_wrapper not in wrappers:
            wrappers.append(django_wrapper)
        if connection.vendor == "sqlite" and connection.connection is not None:
            connection.connection.set_trace_callback(lambda sql: count("db", sql))

    try:
        import psycopg
    except ImportError:
        psycopg = None
    if psycopg is not None:
        execute, executemany = psycopg.Cursor.execute, psycopg.Cursor.executemany
        commit, rollback = psycopg.Connection.commit, psycopg.Connection.rollback

        def counted_execute(self, query, *args, **kwargs):  # noqa: ANN001, ANN202
            count("db", query if isinstance(query, (str, bytes)) else query.as_string(self))
            return execute(self, query, *args, **kwargs)

        def counted_executemany(self, query, *args, **kwargs):  # noqa: ANN001, ANN202
            count("db", query if isinstance(query, (str, bytes)) else query.as_string(self))
            return executemany(self, query, *args, **kwargs)

        def counted_commit(self):  # noqa: ANN001, ANN202
            client.hincrby(key, "db:COMMIT", 1)
            return commit(self)

        def counted_rollback(self):  # noqa: ANN001, ANN202
            client.hincrby(key, "db:ROLLBACK", 1)
            return rollback(self)

        psycopg.Cursor.execute = counted_execute
        psycopg.Cursor.executemany = counted_executemany
        psycopg.Connection.commit = counted_commit
        psycopg.Connection.rollback = counted_rollback

    # which checkout this worker imported the app from: the bench checks it is the stack's app_root
    import medicine_project

    client.hset(key + ":app", str(os.getpid()), str(Path(medicine_project.__file__).resolve().parent.parent))
    connection_created.connect(attach, weak=False, dispatch_uid="bench-count-sql")
    for connection in connections.all(initialized_only=True):  # opened while the app loaded
        if connection.connection is not None:
            attach(connection=connection)


def post_worker_init(worker):  # noqa: ANN001, ANN201 - gunicorn's hook
    if _app_post_worker_init is not None:
        _app_post_worker_init(worker)
    _install_counters()
    worker.log.info("bench: SQL counters installed in worker %s", os.getpid())
