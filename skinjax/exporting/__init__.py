"""A run's calibrated checkpoint as one file that runs without skinjax (ONNX
or StableHLO), and such files loaded back (`python -m skinjax.export`)."""
