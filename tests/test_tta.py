"""Test-time augmentation in the eval step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skinjax import models
from skinjax.config import defaults
from skinjax.inference import forward
from skinjax.parallel import sharding
from skinjax.training import state as train_state
import optax


def test_dihedral_views_are_the_eight_distinct_symmetries():
  image = jnp.arange(2 * 3 * 3 * 1).reshape(2, 3, 3, 1)
  views = forward.TTA_MODES['dihedral'](image)
  assert len(views) == 8 and (views[0] == image).all()
  as_bytes = {np.asarray(v).tobytes() for v in views}
  assert len(as_bytes) == 8
  # Closed under the group: turning any view again gives another view.
  assert np.asarray(jnp.rot90(views[5], 1, axes=(1, 2))).tobytes() in as_bytes
  assert len(forward.TTA_MODES['flips'](image)) == 4
  assert len(forward.TTA_MODES['none'](image)) == 1


@pytest.mark.slow  # the default tier's 10-minute budget
def test_tta_logits_average_the_views_and_keep_the_plain_ones():
  config = defaults.get_config().model
  config.name, config.width = 'resnet18', 4
  model = models.create_model(config, 3)
  state = train_state.create_train_state(jax.random.PRNGKey(0), model,
                                         optax.sgd(0.1), 16)
  mesh = sharding.create_mesh()
  rng = np.random.default_rng(0)
  batch = sharding.shard_batch(
      {'image': rng.integers(0, 255, (4, 16, 16, 3)).astype(np.uint8),
       'label': np.zeros(4, np.int32), 'mask': np.ones(4, bool)}, mesh)
  plain = forward.jit_eval_step(mesh, model=model)(state, batch)
  tta = forward.jit_eval_step(mesh, model=model, tta='flips')(state, batch)
  np.testing.assert_allclose(tta['single_view_logits'], plain['logits'],
                             rtol=1e-5, atol=1e-6)
  flipped = [forward.eval_step(state, {**batch, 'image': v}, model=model)
             ['logits'] for v in forward.TTA_MODES['flips'](batch['image'])]
  expected = np.mean([jax.nn.log_softmax(x) for x in flipped], axis=0)
  np.testing.assert_allclose(tta['logits'], expected, rtol=1e-5, atol=1e-5)
  assert not np.allclose(tta['logits'], jax.nn.log_softmax(plain['logits']))
