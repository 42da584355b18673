"""gRPC servicer of tollgate.v1.CostService: the cost report and outcomes, over the ledger.

The report is ``costing.report.build_report`` (the same rows as ``tollgate cost report``);
outcomes go through ``costing.outcomes.OutcomeStore``. Caller mistakes are INVALID_ARGUMENT
naming the field; a ledger that cannot be read or written is UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import logging
import math
from collections.abc import Awaitable
from typing import NoReturn, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from costing.accounting import CostAccounting
from costing.ledger import LedgerError
from costing.records import OUTCOME_KINDS
from costing.report import ReportRow, check_group_keys
from gateway.api import cost_pb2
from gateway.api_keys import Principal, Role
from gateway.errors import RequestError
from gateway.lenient_decoding import UndecodableRequest
from gateway.grpc_call import CallerReader, abort

log = logging.getLogger(__name__)
T = TypeVar("T")
SERVICE = cost_pb2.DESCRIPTOR.services_by_name["CostService"]
MAX_OUTCOME_ID_CHARS = 128
# Answer UNAVAILABLE this long before the caller's deadline, and never wait on the ledger longer.
DEADLINE_MARGIN_S = 0.05
MAX_LEDGER_WAIT_S = 10.0
DEFAULT_PAGE_SIZE = 500
MAX_PAGE_SIZE = 1000
# Timestamps a caller may send (the ledger's dates; year 10000 does not fit a datetime).
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
# Largest revenue one outcome may carry (in the price book's currency): a bound, not a price list.
MAX_OUTCOME_REVENUE = 1_000_000.0


class CostServicer:
    """``CostReport`` needs a finance key (its own tenant's rows) or a global-finance key (every
    tenant); ``RecordOutcome`` a caller key, for a request of its own tenant."""

    def __init__(self, accounting: CostAccounting, callers: CallerReader) -> None:
        self._accounting = accounting
        self._callers = callers

    async def CostReport(
        self, request: cost_pb2.CostReportRequest | UndecodableRequest, context: grpc.aio.ServicerContext
    ) -> cost_pb2.CostReportResponse:
        principal = await self._principal(context, Role.FINANCE, Role.FINANCE_GLOBAL)
        if isinstance(request, UndecodableRequest):
            await _invalid(context, request.field, request.problem)
        try:
            by = check_group_keys(list(request.by))
        except ValueError as error:
            await _invalid(context, "by", str(error))
        since = await _valid_time(context, request, "since")
        until = await _valid_time(context, request, "until")
        if since is not None and until is not None and until <= since:
            await _invalid(context, "until", f"must be after since ({since.isoformat()})")
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            await _invalid(context, "page_size", f"must be between 1 and {MAX_PAGE_SIZE} (0: {DEFAULT_PAGE_SIZE})")
        tenant = None if principal.role is Role.FINANCE_GLOBAL else principal.tenant
        query = f"{principal.tenant}|{','.join(by)}|{since}|{until}"
        start = _page_start(request.page_token, query)
        if start is None:
            await _invalid(context, "page_token", "is not a token of this report's pages")
        rows = await _from_ledger(context, self._accounting.report(by, since, until, tenant))
        end = start + (request.page_size or DEFAULT_PAGE_SIZE)
        next_token = _page_token(end, query) if end < len(rows) else ""
        return cost_pb2.CostReportResponse(rows=[_row(row) for row in rows[start:end]], next_page_token=next_token)

    async def RecordOutcome(
        self, request: cost_pb2.RecordOutcomeRequest | UndecodableRequest, context: grpc.aio.ServicerContext
    ) -> cost_pb2.RecordOutcomeResponse:
        principal = await self._principal(context, Role.CALLER)
        if isinstance(request, UndecodableRequest):
            await _invalid(context, request.field, request.problem)
        for field in ("outcome_id", "request_id"):
            value = getattr(request, field)
            if not value.strip():
                await _invalid(context, field, "is required")
            if len(value) > MAX_OUTCOME_ID_CHARS:
                await _invalid(context, field, f"at most {MAX_OUTCOME_ID_CHARS} characters, got {len(value)}")
        if request.kind not in OUTCOME_KINDS:
            await _invalid(context, "kind", f"must be one of {', '.join(OUTCOME_KINDS)}, got {request.kind!r}")
        if not math.isfinite(request.revenue) or not 0 <= request.revenue <= MAX_OUTCOME_REVENUE:
            await _invalid(context, "revenue", f"must be a finite amount from 0 to {MAX_OUTCOME_REVENUE:g}, got {request.revenue}")
        owner = await _from_ledger(context, self._accounting.request_tenant(request.request_id))
        if owner is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"request_id: no request {request.request_id[:64]!r} in the ledger")
        if owner != principal.tenant:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "request_id: the request belongs to another tenant")
        outcomes = self._accounting.outcomes
        try:
            outcome = outcomes.build(
                request.outcome_id,
                request.request_id,
                request.kind,
                revenue=request.revenue,
                currency=request.currency,
                timestamp=await _valid_time(context, request, "occurred_at"),
            )
        except ValueError as error:  # the currency: build names the field in its message
            field, _, problem = str(error).partition(": ")
            await _invalid(context, field if problem else "currency", problem or str(error))
        created = await _from_ledger(context, outcomes.record(outcome))
        return cost_pb2.RecordOutcomeResponse(created=created)

    async def _principal(self, context: grpc.aio.ServicerContext, *roles: Role) -> Principal:
        try:
            return self._callers.principal(context, *roles)
        except RequestError as error:
            await abort(context, error)


async def _from_ledger(context: grpc.aio.ServicerContext, work: Awaitable[T]) -> T:
    """Ledger work bounded by the caller's deadline: a failing or locked ledger is UNAVAILABLE
    before the caller gives up (the reason is logged, not sent: it may name the database)."""
    remaining = context.time_remaining()
    budget_s = min(remaining - DEADLINE_MARGIN_S, MAX_LEDGER_WAIT_S) if remaining is not None else MAX_LEDGER_WAIT_S
    try:
        async with asyncio.timeout(max(budget_s, 0.0)):
            return await work
    except (LedgerError, TimeoutError) as error:
        log.warning("cost ledger unavailable to CostService: %s", error or "no answer within the deadline")
        await context.abort(grpc.StatusCode.UNAVAILABLE, "cost ledger unavailable; retry later")
        raise AssertionError("context.abort returned") from None  # pragma: no cover


async def _invalid(context: grpc.aio.ServicerContext, field: str, problem: str) -> NoReturn:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {problem}")
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises


async def _valid_time(context: grpc.aio.ServicerContext, message: object, field: str) -> dt.datetime | None:
    """The timestamp field as a UTC datetime; INVALID_ARGUMENT naming it when out of range."""
    if not message.HasField(field):  # type: ignore[attr-defined]
        return None
    stamp: Timestamp = getattr(message, field)
    if not EARLIEST.timestamp() <= stamp.seconds < LATEST.timestamp():
        await _invalid(context, field, f"must be between {EARLIEST.date()} and {LATEST.date()}")
    return stamp.ToDatetime(tzinfo=dt.UTC)


def _page_token(start: int, query: str) -> str:
    """Opaque: the next row's index, bound to the query it pages through."""
    digest = hashlib.sha256(query.encode()).hexdigest()[:16]
    return base64.urlsafe_b64encode(f"{start}:{digest}".encode()).decode()


def _page_start(token: str, query: str) -> int | None:
    """The row index a token points at (0 for no token); None for a token of another query."""
    if not token:
        return 0
    try:
        start, _, digest = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if digest == hashlib.sha256(query.encode()).hexdigest()[:16] and start.isdigit():
            return int(start)
    except (ValueError, UnicodeDecodeError):
        pass
    return None


def _row(row: ReportRow) -> cost_pb2.CostReportRow:
    """The proto's amounts are doubles, for dashboards: the exact figures are the ledger's and
    ``tollgate cost report``'s (decimal)."""
    allocated = row.allocated

    def amount(value: object) -> float:
        return float(value) if value is not None else 0.0  # type: ignore[arg-type]

    return cost_pb2.CostReportRow(
        group={key: "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
               for key, value in row.group.items()},
        is_total=row.is_total,
        currency=row.currency,
        requests=row.requests,
        cache_hits=row.cache_hits,
        errors=row.errors,
        compute_seconds=amount(row.compute_seconds),
        direct=amount(row.direct),
        compute=amount(row.compute),
        gateway=amount(row.gateway),
        cache=amount(row.cache),
        egress=amount(row.egress),
        avoided=amount(row.avoided),
        reconciled=allocated is not None,
        overhead=amount(row.overhead),
        idle=amount(row.idle),
        storage=amount(row.storage),
        operations=amount(row.operations),
        fully_loaded=amount(row.fully_loaded),
        cost_basis=row.cost_basis,
        cost_per_1k_requests=amount(row.fully_loaded_per_1k_requests or row.cost_per_1k_requests),
        clicks=row.clicks,
        conversions=row.conversions,
        revenue=amount(row.revenue),
        cost_per_conversion=amount(row.cost_per_conversion),
        return_on_cost=amount(row.return_on_cost),
    )  # fmt: skip
