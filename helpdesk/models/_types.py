"""Column helpers shared by the models."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, DateTime, String, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


# The largest id a column holds: the id columns are INTEGER, 32 bits on PostgreSQL (SQLite's hold
# more). A larger number compared with one fails there ("integer out of range"), so it is no id.
ROW_ID_MAX = 2**31 - 1


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime given; use UTC-aware datetimes")
            value = value.astimezone(timezone.utc)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


JSONType = JSON().with_variant(JSONB(), "postgresql")


class folded(FunctionElement):
    """Text as ``nlp.text.normalize`` makes it (NFKC, then lower case), in SQL: a name stored as
    written, ﾔﾏﾀﾞ or ＳＡＴＯ, is found by ヤマダ or sato, and by itself. PostgreSQL has NFKC
    built in; on SQLite it is ``hd_fold``, the same Python function, registered on every
    connection (``helpdesk._on_sqlite_connect``)."""

    type = String()
    name = "folded"
    inherit_cache = True


@compiles(folded)
def _folded_sqlite(element, compiler, **kw):
    return f"hd_fold({compiler.process(element.clauses, **kw)})"


@compiles(folded, "postgresql")
def _folded_postgresql(element, compiler, **kw):
    return f"lower(normalize({compiler.process(element.clauses, **kw)}, NFKC))"
