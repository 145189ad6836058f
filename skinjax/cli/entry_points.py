"""The console scripts of pyproject.toml's [project.scripts]: `skinjax-train
ARGS` runs exactly as `python -m skinjax.train ARGS` (its `__main__` block,
flags and all), so an installed wheel puts every command on PATH without
the repository or launch.sh."""

import runpy


def _command(module: str):
  def run() -> None:
    runpy.run_module(module, run_name='__main__', alter_sys=True)
  run.__doc__ = f'python -m {module}'
  return run


train = _command('skinjax.train')
evaluate = _command('skinjax.evaluate')
predict = _command('skinjax.predict')
serve = _command('skinjax.serve')
export = _command('skinjax.export')
compare = _command('skinjax.compare')
sweep = _command('skinjax.sweep')
extend = _command('skinjax.extend')
