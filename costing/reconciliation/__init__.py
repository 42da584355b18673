"""Reconciliation: every window of the ledger booked once, contiguous, into one origin charge
per resource (capacity = direct + overhead + idle, exactly) allocated to (feature, tenant, model).

- ``booking``: the pure maths of one window (``book_window``), from the records it books, the
  price book, Triton's cumulative counters and the replicas' process CPU;
- ``booker``: ``WindowBooker``, which books window after window from whichever replica runs;
- ``triton_stats``: ``TritonReader``, Triton's cumulative counters per endpoint and model;
- ``replica``: ``ReplicaMeter``, this gateway process's CPU;
- ``summary``: ``resource_summary`` and ``tie_out``, the charges per resource over a range.

Import from the module that names what you need.
"""
