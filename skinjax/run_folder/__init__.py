"""What a run folder (WORKDIR) records as a run goes: its config.json and
what evaluation and a resume may change in it (run_config.py), metrics.jsonl
and its W&B run (tracking.py), its one owner (lock.py), every rewritten file
replaced whole (atomic.py). Its checkpoints: skinjax.training.checkpoints."""
