"""A model's outputs over a set of photos: the eval step (with test-time
augmentation and penultimate features) and the loop over batches.

Shared by training's validation, evaluate, predict, the service and
export. Batches are padded to whole batches and the padding masked out, so
every real example counts once.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from skinjax import progress
from skinjax.models import layers
from skinjax.parallel import sharding


def _flips(images):
  return [images, images[:, :, ::-1], images[:, ::-1], images[:, ::-1, ::-1]]


def _dihedral(images):
  views = _flips(images)
  return views + [jnp.rot90(v, 1, axes=(1, 2)) for v in views]


# config.evaluation.tta -> the views of a batch of NHWC images, the
# identity first.
TTA_MODES = {'none': lambda images: [images], 'flips': _flips,
             'dihedral': _dihedral}


def _apply(model, variables, images, features: bool):
  """(logits, pooled penultimate features or None) in one forward pass."""
  if not features:
    return model.apply(variables, images, train=False), None
  logits, state = model.apply(variables, images, train=False,
                              mutable=['intermediates'])
  return logits, state['intermediates'][layers.PENULTIMATE][0]


def eval_step(state, batch, *, model, tta: str = 'none',
              features: bool = False):
  """Logits with running BatchNorm statistics; labels and mask passed along.

  With test-time augmentation, 'logits' are the mean log-probabilities over
  the views and 'single_view_logits' those of the plain image. With
  `features`, also 'features': the penultimate features (mean over views),
  from the same forward pass as the logits.
  """
  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  logits, pooled = zip(*[_apply(model, variables, view, features)
                         for view in TTA_MODES[tta](batch['image'])])
  result = {'logits': logits[0], 'label': batch['label'],
            'mask': batch['mask']}
  if features:
    result['features'] = jnp.mean(jnp.stack(pooled), axis=0)
  if len(logits) > 1:
    result['single_view_logits'] = logits[0]
    result['logits'] = jnp.mean(jnp.stack(
        [jax.nn.log_softmax(x) for x in logits]), axis=0)
  return result


def jit_eval_step(mesh, *, model, tta: str = 'none', features: bool = False):
  """eval_step compiled so every process receives all outputs."""
  return jax.jit(functools.partial(eval_step, model=model, tta=tta,
                                   features=features),
                 in_shardings=(sharding.replicated(mesh),
                               sharding.batch_sharded(mesh)),
                 out_shardings=sharding.replicated(mesh))


def predict(eval_step_fn, state, dataset, mesh, *, desc: str | None = None,
            total: int | None = None) -> dict:
  """The eval step's outputs ('logits', 'label', ...) for every real
  (unmasked) example of `dataset`, in dataset order. With `desc`, a progress
  bar counts photos as their outputs arrive (`total`: of all processes)."""
  if desc is None:
    results = [eval_step_fn(state, sharding.shard_batch(batch, mesh))
               for batch in dataset]  # dispatched asynchronously, fetched once
  else:
    results = _with_progress(eval_step_fn, state, dataset, mesh, desc, total)
  results = jax.device_get(results)
  return {key: np.concatenate([r[key][r['mask']] for r in results])
          for key in results[0] if key != 'mask'}


def _with_progress(eval_step_fn, state, dataset, mesh, desc: str,
                   total: int | None) -> list:
  """The eval step's results on the device, one batch kept in flight while
  the next is read, each counted once it is done."""
  count = jax.process_count()
  results, pending = [], []
  with progress.bar(total=total and math.ceil(total / count), desc=desc,
                    unit='photo', active=jax.process_index() == 0) as shown:
    for batch in dataset:
      pending.append(int(np.sum(batch['mask'])))
      results.append(eval_step_fn(state, sharding.shard_batch(batch, mesh)))
      if len(results) > 1:
        jax.block_until_ready(results[-2])
        shown.update(pending.pop(0))
    if results:
      jax.block_until_ready(results[-1])
      shown.update(pending.pop(0))
  return results
