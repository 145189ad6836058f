"""Scoring photos with a trained run, from its run folder alone: its weights
restored without the optimiser (restore), a photo prepared for the model
(preparation), the forward pass with test-time augmentation (forward), the
saved calibration and unfamiliarity statistics (calibration, unfamiliar), and
the calibrated, ranked differential (differential). Evaluation, the service
and export build on it; it never imports training or the dataset builders."""
