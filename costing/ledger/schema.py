"""The ledger's tables, written once and rendered for each SQL dialect (SQLite, PostgreSQL).

Each table mirrors one dataclass of ``costing.records``: its columns are the dataclass fields,
in order, and their SQL types follow the field types. A field with a default is a column that
an older ledger may lack; opening that ledger adds it with the default (``migrations``).
"""

from __future__ import annotations

import dataclasses
import functools
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from costing.records import AllocatedCharge, Booking, CostRecord, OriginCharge, Outcome, ReplicaReading

Kind = Literal["text", "ts", "int", "real", "bool"]

# Timestamps in SQLite are fixed-width UTC text, so that text order is time order and the
# first 10 characters are the UTC day.
SQLITE_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

_KIND_OF_ANNOTATION: dict[str, Kind] = {
    "str": "text",
    "OutcomeKind": "text",
    "dt.datetime": "ts",
    "dt.datetime | None": "ts",
    "int": "int",
    "int | None": "int",
    "float": "real",
    "float | None": "real",
    "bool": "bool",
}


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    nullable: bool
    default: object  # dataclasses.MISSING when the column has none


@dataclass(frozen=True)
class Table:
    name: str
    record_type: type
    key: tuple[str, ...]
    indexes: tuple[str, ...] = ()
    # Float money columns of older ledgers -> the integer pico column that replaces each
    # (converted in place when the ledger is opened, then dropped).
    legacy_money: tuple[tuple[str, str], ...] = ()

    @functools.cached_property
    def columns(self) -> tuple[Column, ...]:
        """Computed once per table: every record written reads it (``to_row``)."""
        return tuple(
            Column(
                field.name,
                _KIND_OF_ANNOTATION[str(field.type)],
                str(field.type).endswith("| None"),
                field.default,
            )
            for field in dataclasses.fields(self.record_type)
        )

    @functools.cached_property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


COST_RECORDS = Table(
    "cost_records",
    CostRecord,
    key=("request_id",),
    indexes=("timestamp", "feature", "booked_in"),
    legacy_money=tuple(
        (f"cost_{part}", f"cost_{part}_pico") for part in ("total", "compute", "gateway", "cache", "avoided", "egress")
    ),
)
OUTCOMES = Table("outcomes", Outcome, key=("outcome_id",), indexes=("request_id",), legacy_money=(("revenue", "revenue_pico"),))
COST_BOOKINGS = Table("cost_bookings", Booking, key=("window_end",))
ORIGIN_CHARGES = Table("cost_origin_charges", OriginCharge, key=("window_start", "resource"))
ALLOCATED_CHARGES = Table(
    "cost_allocated_charges",
    AllocatedCharge,
    key=("window_start", "resource", "feature", "tenant", "model", "late"),
    indexes=("window_start",),
)
REPLICAS = Table("cost_replicas", ReplicaReading, key=("replica",))
TABLES: tuple[Table, ...] = (COST_RECORDS, OUTCOMES, COST_BOOKINGS, ORIGIN_CHARGES, ALLOCATED_CHARGES, REPLICAS)


@dataclass(frozen=True)
class Dialect:
    """What differs between the SQL databases the ledger runs on."""

    name: str
    types: dict[Kind, str]
    placeholder: str
    insert_ignore_prefix: str  # "INSERT OR IGNORE INTO" / "INSERT INTO"
    insert_ignore_suffix: str  # "" / "ON CONFLICT DO NOTHING"
    day_of: Callable[[str], str]  # SQL of the UTC day (YYYY-MM-DD) of a timestamp column
    timestamp_param: Callable[[dt.datetime], object]
    timestamp_value: Callable[[Any], dt.datetime]
    bool_param: Callable[[bool], object]

    def sql(self, text: str) -> str:
        """``text`` written with ``?`` placeholders, in this dialect's placeholder style."""
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def create_table(self, table: Table) -> list[str]:
        lines = []
        for column in table.columns:
            line = f"{column.name} {self.types[column.kind]}"
            if not column.nullable:
                line += " NOT NULL"
            if column.default is not dataclasses.MISSING and column.default is not None:
                line += f" DEFAULT {self._literal(column.default)}"
            lines.append(line)
        lines.append(f"PRIMARY KEY ({', '.join(table.key)})")
        body = ",\n    ".join(lines)
        statements = [f"CREATE TABLE IF NOT EXISTS {table.name} (\n    {body}\n)"]
        statements += [
            f"CREATE INDEX IF NOT EXISTS {table.name}_{column} ON {table.name} ({column})" for column in table.indexes
        ]
        return statements

    def add_column(self, table: Table, column: Column) -> str:
        """ALTER TABLE adding ``column`` (which has a default) to an older ledger."""
        null = "" if column.nullable else " NOT NULL"
        default = "NULL" if column.default is None else self._literal(column.default)
        return f"ALTER TABLE {table.name} ADD COLUMN {column.name} {self.types[column.kind]}{null} DEFAULT {default}"

    def insert_ignore(self, table: Table) -> str:
        """INSERT of one row that skips a row whose key is already there."""
        names = table.column_names
        values = ", ".join("?" * len(names))
        text = (
            f"{self.insert_ignore_prefix} {table.name} ({', '.join(names)}) VALUES ({values}) "
            f"{self.insert_ignore_suffix}"
        )
        return self.sql(text.strip())

    def upsert(self, table: Table) -> str:
        """INSERT of one row that replaces the non-key columns of a row with the same key."""
        names = table.column_names
        values = ", ".join("?" * len(names))
        updates = ", ".join(f"{name} = excluded.{name}" for name in names if name not in table.key)
        text = (
            f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({values}) "
            f"ON CONFLICT ({', '.join(table.key)}) DO UPDATE SET {updates}"
        )
        return self.sql(text)

    def legacy_money_statements(self, table: Table, existing: set[str]) -> list[str]:
        """Convert an older ledger's float money columns to integer pico columns, in place."""
        statements = []
        for old, new in table.legacy_money:
            if old in existing and new not in existing:
                statements += [
                    f"ALTER TABLE {table.name} ADD COLUMN {new} {self.types['int']} NOT NULL DEFAULT 0",
                    f"UPDATE {table.name} SET {new} = CAST(ROUND({old} * 1000000000000) AS {self.types['int']})",
                    f"ALTER TABLE {table.name} DROP COLUMN {old}",
                ]
        return statements

    def to_row(self, table: Table, record: object) -> list[object]:
        row: list[object] = []
        for column in table.columns:
            value = getattr(record, column.name)
            if value is None:
                pass
            elif column.kind == "ts":
                value = self.timestamp_param(value)
            elif column.kind == "bool":
                value = self.bool_param(value)
            row.append(value)
        return row

    def from_row(self, table: Table, row: Sequence[object]) -> Any:
        values: dict[str, object] = {}
        for column, value in zip(table.columns, row):
            if value is None:
                values[column.name] = None
            elif column.kind == "ts":
                values[column.name] = self.timestamp_value(value)
            elif column.kind == "bool":
                values[column.name] = bool(value)
            elif column.kind == "int":
                values[column.name] = int(value)  # type: ignore[call-overload]
            elif column.kind == "real":
                values[column.name] = float(value)  # type: ignore[arg-type]
            else:
                values[column.name] = value
        return table.record_type(**values)

    @staticmethod
    def _literal(value: object) -> str:
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, int | float):
            return repr(value)
        return "'" + str(value).replace("'", "''") + "'"


def _sqlite_timestamp_param(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime(SQLITE_TIMESTAMP_FORMAT)


def _sqlite_timestamp_value(raw: Any) -> dt.datetime:
    return dt.datetime.strptime(str(raw), SQLITE_TIMESTAMP_FORMAT).replace(tzinfo=dt.UTC)


def _postgres_timestamp_value(raw: Any) -> dt.datetime:
    return raw.astimezone(dt.UTC)


SQLITE = Dialect(
    name="sqlite",
    types={"text": "TEXT", "ts": "TEXT", "int": "INTEGER", "real": "REAL", "bool": "INTEGER"},
    placeholder="?",
    insert_ignore_prefix="INSERT OR IGNORE INTO",
    insert_ignore_suffix="",
    day_of=lambda column: f"substr({column}, 1, 10)",
    timestamp_param=_sqlite_timestamp_param,
    timestamp_value=_sqlite_timestamp_value,
    bool_param=int,
)

POSTGRES = Dialect(
    name="postgresql",
    types={"text": "TEXT", "ts": "TIMESTAMPTZ", "int": "BIGINT", "real": "DOUBLE PRECISION", "bool": "BOOLEAN"},
    placeholder="%s",
    insert_ignore_prefix="INSERT INTO",
    insert_ignore_suffix="ON CONFLICT DO NOTHING",
    day_of=lambda column: f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    timestamp_param=lambda moment: moment.astimezone(dt.UTC),
    timestamp_value=_postgres_timestamp_value,
    bool_param=bool,
)


def migrations(table: Table, existing_columns: set[str]) -> list[Column]:
    """Columns of ``table`` that an older ledger lacks and that can be added with their default.
    Raises ValueError naming the columns that cannot (no default: not a Tollgate ledger)."""
    existing_columns = existing_columns | {new for old, new in table.legacy_money if old in existing_columns}
    missing = [column for column in table.columns if column.name not in existing_columns]
    impossible = [column.name for column in missing if column.default is dataclasses.MISSING]
    if impossible:
        raise ValueError(f"missing columns: {', '.join(sorted(impossible))}")
    return missing
