"""What a run folder (WORKDIR) records as a run goes: metrics.jsonl and its
W&B run. (Its config.json: skinjax.config.run_config; checkpoints:
skinjax.training.checkpoints.)"""
