"""The HTTP service (`python -m skinjax.serve`): a JSON API and the
clinicians' page over a run's calibrated checkpoint (skinjax.inference)."""
