"""Tollgate's performance suite: every goal is a ratio measured side by side, in one run, on one machine.

Run it with ``make bench`` (``python -m benchmarks run``; ``--quick`` for a smoke run). It starts
a real Triton, Redis (if none answers) and the gateway in several configurations on loopback,
drives them with a load generator in its own process (:mod:`benchmarks.loadgen`: aio gRPC,
bounded in count and time), and prints a table of:

1. the gateway vs direct Triton (same model, same calls, cache off);
2. the cache: hit vs miss, and hit rate vs cost saved under a Zipf-like mix;
3. cost tagging and tracing on vs off;
4. int8 vs fp32 serving speed and cost, beside the pipelines' quality figures;
5. latency and cost vs catalogue size (synthetic beyond the real catalogue) and concurrency.

Results go to ``var/bench/bench-<UTC time>.json`` and ``var/bench/latest.json``;
``python -m benchmarks report --format markdown`` renders the results tables (benchmarks/RESULTS.md),
``python -m benchmarks profile`` samples the gateway's hot path with py-spy, and
``python -m benchmarks search-serving`` times the search ensemble against the two calls composed by
the client, through a real Triton (:mod:`benchmarks.search_serving`).

The pure parts (statistics, goals, load bounds and loops, synthetic catalogues) are unit-tested
in ``tests/unit/test_benchmarks_*.py``.
"""
