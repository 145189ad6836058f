"""Throughput benchmarks of skinjax's own input pipeline and train step.

Run `python -m skinjax.bench --help`; see experiments/benchmarks/README.md.
"""
