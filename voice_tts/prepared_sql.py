"""ORM queries compiled once and run many times: the SQL of the request hot paths.

Django compiles a QuerySet to SQL every time it is evaluated. On the 2-core box that was
0.4-0.8 ms for each of the one-row queries of a cache-hit job request, 10-20 times what SQLite
then took to run it (bench/RESULTS.md). The queries here are still written with the ORM, so
table and column names, lookups and the conversion of each column back to Python (UUIDs,
aware datetimes, JSON, booleans) stay Django's; only the compilation is done once per
database connection, and each call substitutes its own values into the compiled parameters.

Writes go the same way: `model_insert` prepares each field's value exactly as `Model.save()`
does (defaults, `auto_now_add`, JSON adaptation) into an INSERT built once from the model's
fields. It sends no `pre_save`/`post_save` signals; it is only used for models that have no
such receivers (tests/test_prepared_sql.py checks this for every model it is used on).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Field, Model, QuerySet


class PreparedQuery:
    """A `.values(...)` query whose compiled SQL is kept per connection.

    `build(**values)` returns the QuerySet; `slots` names each argument with the model field
    that prepares its value for the database (as the ORM's lookup would). The query is
    compiled with random sentinel values, which locates each argument among the compiled
    parameters; `rows(**values)` puts the real values there.
    """

    def __init__(self, build: Callable[..., QuerySet], **slots: Field) -> None:
        self._build = build
        self._slots = slots
        self._compiled: WeakKeyDictionary[Any, tuple[Any, ...]] = WeakKeyDictionary()

    def _sentinel(self, field: Field) -> Any:
        internal = field.target_field.get_internal_type() if field.is_relation else field.get_internal_type()
        if internal == "UUIDField":
            return uuid.uuid4()
        if internal.endswith("IntegerField") or internal.endswith("AutoField"):
            return -(uuid.uuid4().int % 10**15) - 10**15
        return f"\x00slot-{uuid.uuid4().hex}"

    def _compile(self, connection: Any) -> tuple[Any, ...]:
        sentinels = {name: self._sentinel(field) for name, field in self._slots.items()}
        queryset = self._build(**sentinels)
        query = queryset.query
        compiler = query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        positions = {}
        for name, field in self._slots.items():
            prepared = field.get_db_prep_value(sentinels[name], connection)
            found = [i for i, param in enumerate(params) if param == prepared]
            if not found:
                raise ValueError(f"prepared query: argument {name!r} is not among the compiled parameters")
            positions[name] = found
        names = [*query.extra_select, *query.values_select, *query.annotation_select]
        compiled = (sql, tuple(params), positions, compiler, names)
        self._compiled[connection] = compiled
        return compiled

    def rows(self, **values: Any) -> list[dict[str, Any]]:
        connection = connections[DEFAULT_DB_ALIAS]
        compiled = self._compiled.get(connection) or self._compile(connection)
        sql, base_params, positions, compiler, names = compiled
        params = list(base_params)
        for name, field in self._slots.items():
            prepared = field.get_db_prep_value(values[name], connection)
            for i in positions[name]:
                params[i] = prepared
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            raw = cursor.fetchall()
        # Django's own per-column converters, as `.values()` applies them.
        return [dict(zip(names, row, strict=True)) for row in compiler.results_iter(results=[raw])]

    def first(self, **values: Any) -> dict[str, Any] | None:
        found = self.rows(**values)
        return found[0] if found else None


_insert_sql: WeakKeyDictionary[Any, dict[type[Model], tuple[str, list[Field]]]] = WeakKeyDictionary()


def model_insert(obj: Model, *, before: tuple[str, list[Any]] | None = None) -> None:
    """INSERT a new instance in one statement, values prepared as `save()` prepares them.

    The primary key must be set by its default (a UUID), not by the database. `before` is SQL
    (and its parameters) put in front of the INSERT, e.g. a `WITH x AS (UPDATE ...)` that must
    commit with it."""
    connection = connections[DEFAULT_DB_ALIAS]
    model = type(obj)
    per_model = _insert_sql.setdefault(connection, {})
    if model not in per_model:
        fields = [f for f in model._meta.local_concrete_fields if not f.generated]
        if any(getattr(f, "db_returning", False) for f in fields):
            raise ValueError(f"model_insert: {model.__name__} has a database-generated primary key")
        quote = connection.ops.quote_name
        columns = ", ".join(quote(f.column) for f in fields)
        placeholders = ", ".join(["%s"] * len(fields))
        # Identifiers from the model's meta, values bound as parameters.
        insert = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({placeholders})"  # noqa: S608
        per_model[model] = (insert, fields)
    sql, fields = per_model[model]
    params = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    if before is not None:
        sql, params = f"{before[0]} {sql}", [*before[1], *params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    obj._state.adding = False
    obj._state.db = DEFAULT_DB_ALIAS
