"""Preparing photos: finding files, decoding, duplicates, splits, and the
report; for dataset builders and for photos scored without a build."""
