"""The benchmark harness: uptime-probe against Prometheus blackbox_exporter on one machine.

Run it with `bash scripts/bench.sh` (docs/benchmarks.md says what it measures and how).
Nothing here is imported by the product; everything it starts listens on 127.0.0.1 and
every loop is bounded in count and time.
"""
