"""Costing: the price book, the one function that prices a request, the ledger and its reports.

The pipeline is measure -> price -> record -> flush -> report, one small module per step::

    from costing import CostRecord, LedgerWriter, SqliteLedger, Usage, load_price_book, price_request

    book = load_price_book(settings.price_book_path)
    writer = LedgerWriter(SqliteLedger(settings.ledger_path), settings.ledger_flush_interval_s)
    writer.start()                                       # inside the running event loop
    cost = price_request(Usage(pool="cpu-local", model_compute_ns=2_000_000,
                               gateway_cpu_ns=300_000, cache_ops=2), book)
    writer.record(CostRecord(..., cost_total=cost.total, ...))   # never blocks
    await writer.close()                                 # on shutdown: nothing is lost

Reports (``costing.report``) and the ``tollgate cost`` CLI (``costing.cli``) are imported from
their modules, so that the gateway does not load table rendering or the CLI.
"""

from costing.cost import RequestCost, Usage, price_request
from costing.ledger import CostRecord, LedgerError, LedgerWriter, SqliteLedger
from costing.price_book import PriceBook, PriceBookError, UnknownPoolError, load_price_book

__all__ = [
    "CostRecord",
    "LedgerError",
    "LedgerWriter",
    "PriceBook",
    "PriceBookError",
    "RequestCost",
    "SqliteLedger",
    "UnknownPoolError",
    "Usage",
    "load_price_book",
    "price_request",
]
