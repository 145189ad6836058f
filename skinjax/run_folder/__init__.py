"""What a run folder (WORKDIR) records as a run goes: metrics.jsonl and its
W&B run (tracking.py), its one owner (lock.py), every rewritten file
replaced whole (atomic.py). Its config.json: skinjax.config.run_config; its
checkpoints: skinjax.training.checkpoints."""
