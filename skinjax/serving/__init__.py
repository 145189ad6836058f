"""Serving a trained model to people: ranked differentials for new photos."""
