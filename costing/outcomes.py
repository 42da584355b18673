"""Economic value: outcomes (clicks, purchases with revenue) that frontends report per request.

The RecordOutcome RPC builds an ``Outcome`` with ``OutcomeStore.build`` (a ValueError is the
caller's mistake: INVALID_ARGUMENT) and stores it with ``await OutcomeStore.record`` before it
answers. Outcomes are idempotent by ``outcome_id`` and joined to the cost ledger by request id
in the reports (conversions, revenue, cost per conversion, return on cost).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import cast

from costing.ledger import LedgerBackend
from costing.records import Outcome, OutcomeKind, revenue_pico


class OutcomeStore:
    """Writes outcomes to the ledger, one durable write per outcome (outcomes are rare)."""

    def __init__(self, ledger: LedgerBackend, currency: str) -> None:
        self._ledger = ledger
        self.currency = currency  # the price book's: revenue and cost must be comparable

    def build(
        self,
        outcome_id: str,
        request_id: str,
        kind: str,
        revenue: float = 0.0,
        currency: str = "",
        timestamp: dt.datetime | None = None,
    ) -> Outcome:
        """A validated outcome; ``currency`` defaults to the book's and must equal it. Raises
        ValueError saying which field is wrong."""
        currency = currency or self.currency
        if currency != self.currency:
            raise ValueError(f"currency: outcomes are recorded in {self.currency}, got {currency!r}")
        return Outcome(
            outcome_id=outcome_id,
            request_id=request_id,
            timestamp=timestamp or dt.datetime.now(dt.UTC),
            kind=cast(OutcomeKind, kind),
            revenue_pico=revenue_pico(revenue),
            currency=currency,
        )

    async def record(self, outcome: Outcome) -> bool:
        """Store ``outcome``; True if it is new, False if its id was already stored (a retry)."""
        return await asyncio.to_thread(self._ledger.write_outcomes, [outcome]) == 1
