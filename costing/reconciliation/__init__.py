"""Reconciliation: per clock-aligned window, what each pool cost, split into parts that add up
exactly, and how the compute the requests measured compares with Triton's own statistics.

- ``allocation``: the pure maths of one window (``reconcile_window``), from the ledger's usage,
  the price book and ``TritonCompute``;
- ``triton_stats``: ``TritonStatsPoller``, Triton's statistics snapshots and their differences;
- ``scheduler``: ``WindowReconciler``, which reconciles window after window and stores them;
- ``summary``: ``reconciliation_summary``, the stored windows per pool over a range.

Import from the module that names what you need.
"""
