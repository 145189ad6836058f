"""Extending a trained run with new conditions from a few photos each
(python -m skinjax.extend): the new run folder keeps the old classes' head
rows, adds one row per condition and is scored as any run is.

`conditions` reads and carves the new photos, `rows` makes the new rows,
`old_photos` finds the parent's own photos to replay and validate on,
`lineage` writes where the run came from into its config, and `runner`
does the whole extension. The backbone never changes: fine-tuning its last
stage is not implemented.
"""
