"""Evaluation: a model's outputs over a split, the metrics, calibration,
restoring a checkpoint to score, the report, figures and Grad-CAM."""
