"""Sweeps: a sweep file expanded into named trials (spec.py), run here one
run folder per trial (local.py) or as a W&B sweep (online.py)."""
