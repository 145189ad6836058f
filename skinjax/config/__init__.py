"""The config's schema: every knob and its default (defaults.py). A run's
own copy is skinjax.run_folder.run_config."""
