"""Using a trained model: a run's checkpoint restored and calibrated, ready
to score photos, and the ranked differentials it gives."""
