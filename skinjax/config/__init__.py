"""The config: its schema (defaults.py) and a run's own copy (run_config.py)."""
