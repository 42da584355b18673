"""``tollgate cost export --format focus``: the booked windows as a FOCUS 1.2 cost and usage
dataset, with split cost allocation.

Two kinds of rows (``x_RowType``):

- **origin** rows, one per origin charge (a resource over a window): what was paid, in
  ``BilledCost``; they alone add up to the bill;
- **allocated** rows, one per allocated charge (the share of an origin charge one
  (feature, tenant, model) carries), in FOCUS's split cost allocation shape: ``AllocatedMethodId``
  (how it was split, see ``costing.reconciliation.booking.METHODS``), ``AllocatedResourceId`` /
  ``AllocatedResourceName`` (the origin resource), ``AllocatedTags`` (feature, tenant, model) and
  ``EffectiveCost`` = the share. Their ``BilledCost`` is 0 (nothing is billed twice); their
  ``EffectiveCost`` adds up exactly to the origin row's, resource by resource and window by window.

Sum ``BilledCost`` for the bill, and ``EffectiveCost`` of one row type for showback. Amounts are
exact decimal text (12 places) in CSV and decimal(38, 12) in Parquet. Prices are public list
prices of the price book (``ListCost`` = ``ContractedCost`` = ``EffectiveCost`` on origin rows:
no negotiated discounts are modelled). Columns FOCUS 1.2 does not define carry the ``x_`` prefix.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable, Sequence
from decimal import Decimal

from costing.ledger import LedgerBackend
from costing.money import NS_PER_HOUR, decimal_text, month_bounds, ns_since_epoch
from costing.reconciliation.booking import METHODS
from costing.records import AllocatedCharge, OriginCharge

PROVIDER = "Tollgate"
BILLING_ACCOUNT_ID = "tollgate"
BILLING_ACCOUNT_NAME = "Tollgate inference gateway"
# The platform team issues this internal showback and provides the resources: issuer = provider
# (FOCUS reads a different issuer as a marketplace, whose BilledCost must be 0).
INVOICE_ISSUER = PROVIDER

# kind -> (ServiceCategory, ServiceSubcategory, ServiceName, ResourceType, PricingUnit)
SERVICES: dict[str, tuple[str, str, str, str, str]] = {
    "compute": ("AI and Machine Learning", "Machine Learning", "Tollgate model serving (Triton)", "Triton pool model", "Hours"),
    "gateway": ("Compute", "Containers", "Tollgate gateway", "Gateway replica", "Hours"),
    "cache": ("Databases", "Caching", "Tollgate result cache (Redis)", "Cache node", "Hours"),
    "egress": ("Networking", "Network Connectivity", "Tollgate response egress", "Network path", "GB"),
    "storage": ("Storage", "Block Storage", "Tollgate storage", "Volume", "Hours"),
    "operations": ("Management and Governance", "Other (Management and Governance)", "Tollgate operations", "Operations", "Hours"),
}

COLUMNS: tuple[str, ...] = (
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "ContractedCost",
    "PricingQuantity",
    "PricingUnit",
    "ConsumedQuantity",
    "ConsumedUnit",
    "InvoiceId",
    "InvoiceIssuerName",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceSubcategory",
    "ServiceName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "Tags",
    "AllocatedMethodId",
    "AllocatedMethodDetails",
    "AllocatedResourceId",
    "AllocatedResourceName",
    "AllocatedTags",
    "x_RowType",
    "x_Pool",
    "x_Model",
    "x_DirectCost",
    "x_OverheadCost",
    "x_IdleCost",
    "x_Late",
    "x_PriceBookVersion",
)
MONEY = frozenset({"BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "x_DirectCost", "x_OverheadCost", "x_IdleCost"})
QUANTITIES = frozenset({"PricingQuantity", "ConsumedQuantity"})


def focus_rows(charges: Sequence[OriginCharge], allocated: Sequence[AllocatedCharge]) -> list[dict[str, object]]:
    """Origin rows then, after each, its allocated rows; amounts as exact decimal text."""
    by_charge: dict[tuple[dt.datetime, str], list[AllocatedCharge]] = {}
    for item in allocated:
        by_charge.setdefault((item.window_start, item.resource), []).append(item)
    rows: list[dict[str, object]] = []
    for charge in charges:
        rows.append(_origin_row(charge))
        for item in by_charge.get((charge.window_start, charge.resource), []):
            rows.append(_allocated_row(charge, item))
    return rows


def _common(charge: OriginCharge) -> dict[str, object]:
    category, subcategory, service, resource_type, unit = SERVICES[charge.kind]
    period_start, period_end = month_bounds(charge.window_start)
    hours = Decimal(ns_since_epoch(charge.window_end) - ns_since_epoch(charge.window_start)) / NS_PER_HOUR
    if charge.kind == "egress":
        pricing_quantity = Decimal(charge.usage_quantity) / 10**9
    else:
        pricing_quantity = hours
    consumed_unit = {"ns": "Seconds", "operations": "Requests", "bytes": "GB"}.get(charge.usage_unit, "")
    consumed = Decimal(charge.usage_quantity)
    consumed = consumed / 10**9 if charge.usage_unit in ("ns", "bytes") else consumed
    return {
        "BillingAccountId": BILLING_ACCOUNT_ID,
        "BillingAccountName": BILLING_ACCOUNT_NAME,
        "BillingCurrency": charge.currency,
        "BillingPeriodStart": _time(period_start),
        "BillingPeriodEnd": _time(period_end),
        "ChargePeriodStart": _time(charge.window_start),
        "ChargePeriodEnd": _time(charge.window_end),
        "ChargeCategory": "Usage",
        "ChargeClass": None,
        "ChargeFrequency": "Usage-Based" if charge.kind in ("compute", "egress") else "Recurring",
        "PricingQuantity": _quantity(pricing_quantity),
        "PricingUnit": unit,
        "ConsumedQuantity": _quantity(consumed) if consumed_unit else None,
        "ConsumedUnit": consumed_unit or None,
        "InvoiceId": f"showback-{period_start:%Y-%m}",  # the month's (provisional) showback statement
        "InvoiceIssuerName": INVOICE_ISSUER,
        "ProviderName": PROVIDER,
        "PublisherName": PROVIDER,
        "ServiceCategory": category,
        "ServiceSubcategory": subcategory,
        "ServiceName": service,
        "ResourceId": charge.resource,
        "ResourceName": charge.resource,
        "ResourceType": resource_type,
        "x_Pool": charge.pool,
        "x_Model": charge.model,
        "x_PriceBookVersion": charge.price_book_version,
    }


def _origin_row(charge: OriginCharge) -> dict[str, object]:
    amount = decimal_text(charge.capacity_pico)
    description = (
        f"{charge.resource}: direct {decimal_text(charge.direct_pico)} + overhead {decimal_text(charge.overhead_pico)}"
        f" + idle {decimal_text(charge.idle_pico)} {charge.currency}"
    )
    tags = {"pool": charge.pool, "model": charge.model} if charge.model else {"pool": charge.pool}
    return {
        **_common(charge),
        "ChargeDescription": description,
        "BilledCost": amount,
        "EffectiveCost": amount,
        "ListCost": amount,
        "ContractedCost": amount,
        "Tags": json.dumps(tags, sort_keys=True),
        "AllocatedMethodId": None,
        "AllocatedMethodDetails": None,
        "AllocatedResourceId": None,
        "AllocatedResourceName": None,
        "AllocatedTags": None,
        "x_RowType": "origin",
        "x_DirectCost": decimal_text(charge.direct_pico),
        "x_OverheadCost": decimal_text(charge.overhead_pico),
        "x_IdleCost": decimal_text(charge.idle_pico),
        "x_Late": "false",
    }


def _allocated_row(charge: OriginCharge, item: AllocatedCharge) -> dict[str, object]:
    owner = {"feature": item.feature, "tenant": item.tenant, "model": item.model}
    amount = decimal_text(item.total_pico)
    return {
        **_common(charge),
        "ChargeDescription": f"{charge.resource} allocated to {item.feature}/{item.tenant}/{item.model}"
        + (" (late records)" if item.late else ""),
        "BilledCost": "0",
        "EffectiveCost": amount,
        "ListCost": amount,
        "ContractedCost": amount,
        "Tags": json.dumps(owner, sort_keys=True),
        "AllocatedMethodId": item.method,
        "AllocatedMethodDetails": METHODS.get(item.method, item.method),
        "AllocatedResourceId": charge.resource,
        "AllocatedResourceName": charge.resource,
        "AllocatedTags": json.dumps(owner, sort_keys=True),
        "x_RowType": "allocated",
        "x_DirectCost": decimal_text(item.direct_pico),
        "x_OverheadCost": decimal_text(item.overhead_pico),
        "x_IdleCost": decimal_text(item.idle_pico),
        "x_Late": "true" if item.late else "false",
    }


def export_focus(
    ledger: LedgerBackend,
    since: dt.datetime | dt.date | None = None,
    until: dt.datetime | dt.date | None = None,
) -> list[dict[str, object]]:
    """The FOCUS rows of the windows starting in [since, until)."""
    return focus_rows(ledger.charges(since, until), ledger.allocated(since, until))


def render_focus_csv(rows: Iterable[dict[str, object]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if value is None else value for key, value in row.items()})
    return out.getvalue()


def render_focus_parquet(rows: Sequence[dict[str, object]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def arrow_type(name: str):  # noqa: ANN202
        if name in MONEY or name in QUANTITIES:
            return pa.decimal128(38, 12)
        if name.endswith(("PeriodStart", "PeriodEnd")):
            return pa.timestamp("us", tz="UTC")
        return pa.string()

    converted = [
        {
            name: (
                None if row.get(name) is None
                else Decimal(str(row[name])) if name in MONEY or name in QUANTITIES
                else dt.datetime.fromisoformat(str(row[name]).replace("Z", "+00:00")) if name.endswith(("PeriodStart", "PeriodEnd"))
                else row[name]
            )
            for name in COLUMNS
        }
        for row in rows
    ]  # fmt: skip
    schema = pa.schema([pa.field(name, arrow_type(name)) for name in COLUMNS])
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(converted, schema=schema), sink)
    return sink.getvalue()


def _time(moment: dt.datetime) -> str:
    """ISO 8601 UTC, as FOCUS asks: 2026-11-23T12:00:00Z (microseconds when there are any)."""
    text = moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"


def _quantity(value: Decimal) -> str:
    quantized = value.quantize(Decimal("0.000000000001"))
    text = format(quantized, "f").rstrip("0").rstrip(".")
    return text or "0"
