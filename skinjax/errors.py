"""The one kind of error a user can fix, and the one way commands report it.

Every mistake that a user makes and can mend (a config key or value, a run
folder, a checkpoint, photos, a collection, weights, a full disk) raises a
subclass of UserError whose message is one line naming the file, flag or key.
`skinjax.cli.main.run` prints such an error as `error: ...` and exits 1; any
other exception is a bug and keeps its traceback.
"""


class UserError(ValueError):
  """A mistake the user can fix; the message names the file, flag or key."""


class ConfigError(UserError):
  """A config value that cannot work, here or with this dataset or run
  folder; the message names the key."""
