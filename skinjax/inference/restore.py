"""A run's checkpoint, ready to score photos, from the run folder alone: the
class names (class_names.json), the weights (params and BatchNorm statistics,
or their moving average; never the optimiser state), the compiled eval step
(logits and penultimate features) and the calibration with the statistics of
the 'unfamiliar' flag, which `evaluate` fits. Reads only: a copied, read-only
run folder scores as the original does.
"""

import dataclasses
import hashlib
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from skinjax import models
from skinjax.inference import calibration as calibration_lib
from skinjax.inference import differential
from skinjax.inference import forward
from skinjax.inference import preparation
from skinjax.inference import quality
from skinjax.inference import unfamiliar
from skinjax.parallel import sharding
from skinjax.run_folder import checkpoint_folder
from skinjax.run_folder import class_names as class_names_lib

CheckpointNotFound = checkpoint_folder.CheckpointNotFound


@flax.struct.dataclass
class Weights:
  """What the eval step reads of a checkpoint (forward.eval_step)."""
  params: Any
  batch_stats: Any


@dataclasses.dataclass(frozen=True)
class Checkpoint:
  """What scoring needs of a checkpoint. `calibration` and
  `feature_statistics` are None until read (`load`) or fitted
  (skinjax.evaluation.calibrate)."""
  class_names: list
  mesh: Any
  model: Any
  state: Weights  # the moving average in place of the weights if asked
  step: int
  weights: str  # 'raw' or 'ema'
  eval_step: Callable  # jitted, with config.evaluation.tta; gives features
  calibration: calibration_lib.Calibration | None = None
  # Training-feature class means and precision (unfamiliar.mahalanobis), and
  # the validation photos' unfamiliarity ('validation_<score>').
  feature_statistics: dict | None = None

  def outputs(self, images: np.ndarray, batch_size: int,
              desc: str | None = None) -> dict:
    """The eval step's 'logits' and 'features' (and 'single_view_logits'
    with TTA) of uint8 images [n, size, size, 3], in batches of
    `batch_size`, the last one padded; with `desc`, a progress bar."""
    def batches():  # one padded copy at a time
      for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        count = len(chunk)
        yield {'image': np.concatenate(
                   [chunk, np.repeat(chunk[:1], batch_size - count, axis=0)]),
               'label': np.zeros(batch_size, np.int32),
               'mask': np.arange(batch_size) < count}
    return forward.predict(self.eval_step, self.state, batches(), self.mesh,
                           desc=desc, total=len(images))

  def probabilities(self, logits) -> np.ndarray:
    return differential.probabilities(logits, self.calibration.temperature)

  def unfamiliarity(self, result: dict) -> dict:
    """unfamiliar.scores of the eval step's outputs."""
    return unfamiliar.scores(result['logits'], result['features'],
                             self.feature_statistics,
                             self.calibration.temperature)

  def flag_unfamiliar(self, scores: dict) -> np.ndarray:
    """Which photos the calibration's unfamiliar threshold flags."""
    return (scores[self.calibration.unfamiliar_score]
            > self.calibration.unfamiliar_threshold)

  def quality_gate(self, config) -> quality.Gate:
    """The quality gate with `config`'s thresholds and what this checkpoint's
    calibration fitted on the run's photos."""
    return quality.Gate.from_config(
        config, preparation.Recipe.from_config(config).image_size,
        self.feature_statistics)

  def differentials(self, result: dict, top_k: int, skin_tones=None,
                    qualities=None) -> list:
    """differential.differentials of the eval step's outputs: calibrated,
    flagged uncertain and unfamiliar, with the quality gate's verdicts."""
    return differential.differentials(
        self.probabilities(result['logits']), self.class_names, top_k,
        self.calibration.threshold,
        unfamiliar=self.flag_unfamiliar(self.unfamiliarity(result)),
        skin_tones=skin_tones, qualities=qualities)


def params_digest(params) -> str:
  """A short fingerprint of a model's classifier head: it changes with any
  training, so it tells one checkpoint's weights from another's."""
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(jax.device_get(params[models.HEAD])):
    digest.update(np.ascontiguousarray(leaf).tobytes())
  return digest.hexdigest()[:16]


def restore(config, workdir: str, which: str = 'best',
            weights: str = 'raw') -> Checkpoint:
  """Checkpoint `which` ('best', 'latest' or a step) of the run in `workdir`,
  its raw or moving-average (`weights='ema'`) weights, uncalibrated."""
  if weights == 'ema' and not config.ema_decay:
    raise CheckpointNotFound('weights=ema: the run kept no moving average of '
                             'the weights (its config.ema_decay is 0)')
  class_names = class_names_lib.read(workdir)
  mesh = sharding.create_mesh()
  model = models.create_model(config.model, len(class_names))
  manager = checkpoint_folder.create_manager(
      workdir, config.keep_checkpoints, config.best_metric, read_only=True)
  try:
    step = checkpoint_folder.select_step(manager, which)
    state = _restore_weights(manager, step, model, config.image_size,
                             sharding.replicated(mesh), weights)
  finally:
    manager.close()
  eval_step = forward.jit_eval_step(mesh, model=model,
                                    tta=config.evaluation.tta, features=True)
  return Checkpoint(class_names, mesh, model, state, step, weights, eval_step)


def load(config, workdir: str, which: str = 'best',
         weights: str = 'raw') -> Checkpoint:
  """As `restore`, with the calibration saved for exactly these weights and
  scoring settings (calibration.read: CalibrationMissing, naming the
  `evaluate` command that fits it, when there is none)."""
  checkpoint = restore(config, workdir, which, weights)
  calibration, statistics = calibration_lib.read(
      config, workdir, checkpoint.step, weights,
      params_digest(checkpoint.state.params))
  return dataclasses.replace(checkpoint, calibration=calibration,
                             feature_statistics=statistics)


def _restore_weights(manager, step: int, model, image_size: int, placement,
                     weights: str) -> Weights:
  """Only the weights of checkpoint `step`: an Orbax partial restore reads
  neither the optimiser state (twice the weights again with Adam) nor the
  RNG."""
  shapes = jax.eval_shape(lambda: model.init(
      jax.random.PRNGKey(0), jnp.zeros((1, image_size, image_size, 3),
                                       jnp.uint8), train=False))
  abstract = {key: jax.tree.map(
      lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=placement),
      shapes.get(key, {})) for key in ('params', 'batch_stats')}
  item = checkpoint_folder.EMA if weights == 'ema' else checkpoint_folder.STATE
  restored = manager.restore(step, args=ocp.args.Composite(**{
      item: ocp.args.PyTreeRestore(
          item=abstract,
          restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
          partial_restore=True)}))[item]
  return Weights(params=restored['params'],
                 batch_stats=restored['batch_stats'])
