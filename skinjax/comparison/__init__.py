"""Comparing run folders offline, from metrics.jsonl and config.json alone:
what each run reached and what differs between them (runs.py), curves
(figures.py), the table and markdown report (report.py)."""
