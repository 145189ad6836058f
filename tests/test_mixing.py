"""Mixup and CutMix: what the mixed batch holds, what the loss counts, and
the train step that mixes (reproducible, same under accumulation)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skinjax import models
from skinjax.config import defaults
from skinjax.data import mixing
from skinjax.parallel import sharding
from skinjax.training import loss as loss_lib
from skinjax.training import optimizer as optim
from skinjax.training import state as train_state
from skinjax.training import step as steps


def _images(size=6, side=12):
  """Each image a constant of its own, so a pixel tells whose it is."""
  return (np.arange(size, dtype=np.float32)[:, None, None, None] * 40
          + np.zeros((size, side, side, 3), np.float32))


def test_mixup_blends_each_example_with_its_mirror_and_learns_both_labels():
  images, labels = _images(), jnp.arange(6)
  mixed, partner_labels, share = jax.jit(
      mixing.mix_batch, static_argnums=(3, 4))(
          images, labels, jax.random.PRNGKey(3), 0.4, 0.0)
  s = float(share[0])
  assert 0 < s < 1 and np.all(np.asarray(share) == s)
  np.testing.assert_array_equal(partner_labels, [5, 4, 3, 2, 1, 0])
  np.testing.assert_allclose(mixed, (1 - s) * images + s * images[::-1],
                             rtol=1e-6)


def test_cutmix_pastes_one_box_of_the_partner_and_counts_its_area():
  images = _images(side=16)
  seen_shares = set()
  for seed in range(6):
    mixed, partner_labels, share = mixing.mix_batch(
        images, jnp.arange(6), jax.random.PRNGKey(seed), 0.0, 1.0)
    mixed = np.asarray(mixed)
    from_partner = mixed[0, :, :, 0] == images[5, 0, 0, 0]
    assert np.all(from_partner | (mixed[0, :, :, 0] == images[0, 0, 0, 0]))
    rows, cols = np.nonzero(from_partner)
    if len(rows):  # a rectangle
      assert from_partner[rows.min():rows.max() + 1,
                          cols.min():cols.max() + 1].all()
    assert float(share[0]) == pytest.approx(from_partner.mean())
    for e in range(6):  # the same box in every example
      np.testing.assert_array_equal(
          mixed[e, :, :, 0] == images[5 - e, 0, 0, 0], from_partner)
    seen_shares.add(round(float(share[0]), 4))
  assert len(seen_shares) > 3


def test_with_both_alphas_each_step_draws_one_of_the_two():
  images = _images(side=16)
  kinds = set()
  for seed in range(12):
    mixed, _, share = mixing.mix_batch(images, jnp.arange(6),
                                       jax.random.PRNGKey(seed), 0.4, 1.0)
    s = float(share[0])
    blended = np.allclose(mixed, (1 - s) * images + s * images[::-1],
                          rtol=1e-6)
    pasted = set(np.unique(np.asarray(mixed[0]))) <= {0.0, 200.0}
    assert blended or pasted
    kinds.add('mixup' if blended and not pasted else 'cutmix')
  assert kinds == {'mixup', 'cutmix'}


def test_a_mixed_example_counts_both_labels_by_share_and_class_weight():
  rng = np.random.default_rng(0)
  logits = jnp.asarray(rng.normal(size=(6, 3)), jnp.float32)
  labels, partners = jnp.asarray([0, 0, 0, 0, 1, 2]), jnp.asarray(
      [2, 1, 0, 0, 0, 0])
  share = jnp.full((6,), 0.3)
  nll = -np.asarray(jax.nn.log_softmax(logits))
  own, other = nll[np.arange(6), labels], nll[np.arange(6), partners]
  plain = loss_lib.cross_entropy_loss(logits, labels, 0.0)
  assert float(loss_lib.cross_entropy_loss(
      logits, labels, 0.0, None, partners, jnp.zeros(6))) == pytest.approx(
          float(plain), rel=1e-6)
  assert float(loss_lib.cross_entropy_loss(
      logits, labels, 0.0, None, partners, share)) == pytest.approx(
          float(np.mean(0.7 * own + 0.3 * other)), rel=1e-5)
  weights = loss_lib.balanced_class_weights(np.asarray(labels), 3)
  w_own, w_other = 0.7 * weights[labels], 0.3 * weights[partners]
  assert float(loss_lib.cross_entropy_loss(
      logits, labels, 0.0, weights, partners, share)) == pytest.approx(
          float((w_own * own + w_other * other).sum()
                / (w_own + w_other).sum()), rel=1e-5)


def _mixing_step(grad_accum_steps, mixup_alpha=0.4, cutmix_alpha=1.0):
  """(a fresh state, the compiled step, a batch); BatchNorm statistics
  frozen, so nothing depends on how the batch is split."""
  config = defaults.get_config()
  config.model.name, config.model.width = 'resnet18', 4
  config.model.freeze_batch_stats = True
  mesh = sharding.create_mesh()
  model = models.create_model(config.model, num_classes=4)
  schedule = optim.learning_rate_schedule(config.optimizer, 100)
  tx = optim.create_optimizer(config.optimizer, schedule)
  new_state = functools.partial(jax.jit(
      train_state.create_train_state, static_argnums=(1, 2, 3)),
                                jax.random.PRNGKey(0), model, tx, 16)
  step = steps.jit_train_step(mesh, model, tx, steps.StepOptions(
      schedule, label_smoothing=0.1, grad_accum_steps=grad_accum_steps,
      mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha))
  rng = np.random.default_rng(0)
  batch = sharding.shard_batch(
      {'image': rng.integers(0, 255, (8, 16, 16, 3)).astype(np.uint8),
       'label': np.arange(8, dtype=np.int32) % 4}, mesh)
  return new_state, step, batch


def _three_steps(new_state, step, batch):
  state = new_state()
  for _ in range(3):
    state, metrics = step(state, batch)
  return jax.tree.leaves(jax.device_get(state.params)), float(metrics['loss'])


@pytest.mark.slow
def test_the_mixing_train_step_is_reproducible_and_split_proof():
  """The mix is drawn from the step's key alone (a resumed run mixes the
  same), before the batch is split into micro-batches; and it is applied
  (the loss is not the unmixed step's)."""
  mixing_step = _mixing_step(1)
  first, loss = _three_steps(*mixing_step)
  again, loss_again = _three_steps(*mixing_step)
  accumulated, accum_loss = _three_steps(*_mixing_step(2))
  assert loss_again == loss and accum_loss == pytest.approx(loss, rel=1e-5)
  for a, b, c in zip(first, again, accumulated):
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(c, a, rtol=1e-5, atol=1e-6)
  _, unmixed_loss = _three_steps(*_mixing_step(1, 0.0, 0.0))
  assert unmixed_loss != pytest.approx(loss, rel=1e-3)
