"""Costing: the price book, the one function that prices a request, the ledger, the per-window
reconciliation, metrics, budgets, outcomes and the reports.

The pipeline is measure -> price -> record -> flush -> reconcile -> report, one small module
per step::

    from costing import CostRecord, LedgerWriter, Usage, load_price_book, open_ledger, price_request

    book = load_price_book(settings.price_book_path)
    writer = LedgerWriter(open_ledger("sqlite:///var/ledger.sqlite"), settings.ledger_flush_interval_s)
    writer.start()                                       # inside the running event loop
    cost = price_request(Usage(pool="cpu-local", model_compute_ns=2_000_000,
                               gateway_cpu_ns=300_000, cache_ops=2, response_bytes=900), book)
    writer.record(CostRecord(..., cost_total_pico=cost.total_pico, ...))  # never blocks; integer pico-$
    await writer.close()                                 # on shutdown: nothing is lost

Costing owns its configuration: ``costing.settings.CostingSettings`` (``TOLLGATE_*`` variables),
which the gateway's ``Settings`` extends. ``costing.accounting.CostAccounting`` wires the
ledger, metrics, budgets, outcomes and the reconciliation from those settings; the gateway
passes in what only it knows (its pools' Triton clients, its model names). The ledger is the
package ``costing.ledger`` (its writer, SQL, schema and backends); the reconciliation is the
package ``costing.reconciliation`` (the booking of one window into origin and allocated
charges, the booker of contiguous windows, Triton's counters, the replica's process CPU, the
tie-out summary); money is exact (``costing.money``, integer pico-units). Reports (``costing.report``, rendered by ``costing.report_render``), the
``tollgate cost`` CLI (``costing.cli``), metrics and the reconciliation are imported from their
modules, so that importing ``costing`` loads no table rendering, Prometheus or tritonclient.
Nothing in costing depends on the gateway, the pipeline, the deployment or the benchmarks.
"""

from costing.cost import RequestCost, Usage, price_request
from costing.ledger import CostRecord, LedgerBackend, LedgerError, LedgerWriter, SqliteLedger, open_ledger
from costing.price_book import PriceBook, PriceBookError, UnknownPoolError, load_price_book
from costing.records import Outcome

__all__ = [
    "CostRecord",
    "LedgerBackend",
    "LedgerError",
    "LedgerWriter",
    "Outcome",
    "PriceBook",
    "PriceBookError",
    "RequestCost",
    "SqliteLedger",
    "UnknownPoolError",
    "Usage",
    "load_price_book",
    "open_ledger",
    "price_request",
]
