"""How every command starts and ends: absl flags parsed with one-line errors
(cli.flags.parse_flags), then `main`; a UserError becomes `error: ...` on
stderr and exit status 1, while any other exception, a bug, keeps its
traceback."""

import sys

from absl import app

from skinjax import errors
from skinjax.cli import flags as cli_flags


def run(main, known_only: bool = False) -> None:
  """app.run(main) with skinjax's flag parser and error contract; with
  `known_only`, flags this command does not define reach `main` in argv."""
  def guarded(argv):
    try:
      return main(argv)
    except errors.UserError as e:
      sys.exit(f'error: {e}')
  app.run(guarded, flags_parser=lambda argv: cli_flags.parse_flags(
      argv, known_only))
