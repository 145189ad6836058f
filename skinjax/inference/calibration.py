"""A checkpoint's calibration as scoring applies it: the softmax temperature,
the confidence threshold of selective prediction and the threshold of the
'unfamiliar' flag, fitted on validation by `evaluate`
(skinjax.evaluation.calibrate) and read back here.

They are stored as WORKDIR/calibration/<step>.json (<step>.ema.json for the
moving-average weights) beside the checkpoint they belong to; the
training-feature statistics of the Mahalanobis score lie beside it
(unfamiliar.statistics_path). A calibration is used only for exactly what
it was fitted for (`fitted_for`).
"""

import dataclasses
import json
import os

from skinjax import errors
from skinjax.inference import preparation
from skinjax.inference import unfamiliar
from skinjax.run_folder import atomic

CALIBRATION_DIR = 'calibration'


@dataclasses.dataclass(frozen=True)
class Calibration:
  """What evaluate and predict apply to a checkpoint's logits."""
  temperature: float  # logits are divided by it
  # Calibrated top probability below which a prediction is flagged
  # 'uncertain'; None when no threshold reaches max_risk on validation.
  threshold: float | None
  max_risk: float
  checkpoint_step: int
  weights: str  # 'raw' or 'ema' (the moving average of the weights)
  tta: str  # the test-time augmentation the logits were fitted with
  fitted_on: dict  # split, examples, and what the fit did there
  # Of the weights it was fitted for; '' in files written before it was kept.
  params_digest: str = ''
  # The unfamiliarity score (unfamiliar.SCORES) above whose threshold a photo
  # is flagged 'unfamiliar', chosen so that unfamiliar_tpr of validation
  # photos are not; '' and None in files written before the flag existed.
  unfamiliar_score: str = ''
  unfamiliar_tpr: float | None = None
  unfamiliar_threshold: float | None = None


def fitted_for(calibration: Calibration) -> dict:
  """What a calibration belongs to: it is reused only where all of it
  matches (a rewritten checkpoint of the same step has other weights)."""
  return {'checkpoint_step': calibration.checkpoint_step,
          'weights': calibration.weights, 'tta': calibration.tta,
          'max_risk': calibration.max_risk,
          'split': calibration.fitted_on.get('split'),
          'image_size': calibration.fitted_on.get('image_size'),
          'crop_fraction': calibration.fitted_on.get('crop_fraction'),
          'params_digest': calibration.params_digest,
          'unfamiliar_score': calibration.unfamiliar_score,
          'unfamiliar_tpr': calibration.unfamiliar_tpr}


def path(workdir: str, step: int, weights: str) -> str:
  name = f'{step}.json' if weights == 'raw' else f'{step}.{weights}.json'
  return os.path.join(workdir, CALIBRATION_DIR, name)


def save(calibration: Calibration, workdir: str) -> str:
  """Writes atomically, so a crash never leaves a file that reads as valid."""
  target = path(workdir, calibration.checkpoint_step, calibration.weights)
  os.makedirs(os.path.dirname(target), exist_ok=True)
  atomic.write_text(target, json.dumps(dataclasses.asdict(calibration),
                                       indent=2))
  return target


def load(workdir: str, step: int, weights: str) -> Calibration | None:
  """The calibration saved for these weights of checkpoint `step`, or None."""
  try:
    with open(path(workdir, step, weights)) as f:
      return Calibration(**json.load(f))
  except FileNotFoundError:
    return None


class CalibrationMissing(errors.UserError):
  """No calibration fitted for exactly these weights and settings; the
  message says which `evaluate` command fits it."""


def wanted(config, step: int, weights: str, params_digest: str) -> dict:
  """What a calibration must have been fitted for (fitted_for) to be applied
  to these weights of checkpoint `step` with `config`'s scoring settings."""
  recipe = preparation.Recipe.from_config(config)
  return {'checkpoint_step': step, 'weights': weights,
          'tta': config.evaluation.tta,
          'max_risk': config.evaluation.max_risk,
          'split': config.dataset.eval_split,
          'image_size': recipe.image_size,
          'crop_fraction': recipe.crop_fraction,
          'params_digest': params_digest,
          'unfamiliar_score': config.evaluation.unfamiliar_score,
          'unfamiliar_tpr': config.evaluation.unfamiliar_tpr}


def mismatches(calibration: Calibration, want: dict) -> dict:
  """{key: (fitted for, wanted)} wherever `calibration` was fitted for
  something other than `want`."""
  return {k: (v, want[k]) for k, v in fitted_for(calibration).items()
          if v != want[k]}


def read(config, workdir: str, step: int, weights: str,
         params_digest: str) -> tuple:
  """(calibration, unfamiliar feature statistics) saved for these weights and
  settings; CalibrationMissing, naming the `evaluate` command that fits
  them, when there are none. Reads only."""
  saved = load(workdir, step, weights)
  statistics = unfamiliar.load_statistics(
      unfamiliar.statistics_path(path(workdir, step, weights)))
  command = (f'python -m skinjax.evaluate --workdir {workdir} --checkpoint '
             f'{step}' + (' --weights ema' if weights == 'ema' else '') +
             ' (with the same --config overrides) fits it on the run\'s '
             'validation split')
  if saved is None or statistics is None:
    raise CalibrationMissing(
        f'{path(workdir, step, weights)}: no calibration for checkpoint '
        f'{step} ({weights} weights); {command}')
  differs = mismatches(saved, wanted(config, step, weights, params_digest))
  if differs:
    raise CalibrationMissing(
        f'{path(workdir, step, weights)} was fitted for other settings ('
        + ', '.join(f'{k} {old!r}, here {new!r}'
                    for k, (old, new) in differs.items()) + f'); {command}')
  return saved, statistics
