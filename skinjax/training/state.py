"""The explicit training state: everything a step reads and writes."""

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp

from skinjax.models import transfer
from skinjax.parallel import sharding


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array  # folded with the step for dropout: resumable, reproducible
  # Moving average {'params', 'batch_stats'}; None when config.ema_decay = 0.
  ema: Any = None


def create_train_state(rng, model, tx, image_size: int,
                       ema: bool = False) -> TrainState:
  """Initial state; jit it with replicated out_shardings to place it."""
  init_rng, dropout_rng = jax.random.split(rng)
  variables = model.init(init_rng, jnp.zeros((1, image_size, image_size, 3),
                                             jnp.uint8), train=False)
  params = variables['params']
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get('batch_stats', {}),
                    opt_state=tx.init(params), rng=dropout_rng,
                    ema=_weights(variables) if ema else None)


def initial_state(config, model, tx, mesh) -> TrainState:
  """The state a new run starts from, replicated over `mesh`: initialised
  from config.seed, then overlaid with config.model.init_from's weights (and
  a fresh optimiser state) when that is set."""
  replicated = sharding.replicated(mesh)
  state = jax.jit(create_train_state, static_argnums=(1, 2, 3, 4),
                  out_shardings=replicated)(
                      jax.random.PRNGKey(config.seed), model, tx,
                      config.image_size, config.ema_decay > 0)
  if config.model.init_from:
    variables = transfer.initial_variables(
        config.model, {'params': state.params,
                       'batch_stats': state.batch_stats})
    state = jax.jit(functools.partial(with_variables, tx=tx),
                    out_shardings=replicated)(state, variables)
  return state


def with_variables(state: TrainState, variables: dict, tx) -> TrainState:
  """`state` starting from other weights, with a fresh optimiser state."""
  return state.replace(params=variables['params'],
                       batch_stats=variables.get('batch_stats', {}),
                       opt_state=tx.init(variables['params']),
                       ema=None if state.ema is None else _weights(variables))


def _weights(variables: dict) -> dict:
  """A copy of the weights to start the moving average: buffers of their own,
  as the train step donates the whole state."""
  return jax.tree.map(jnp.copy, {'params': variables['params'],
                                 'batch_stats': variables.get('batch_stats',
                                                              {})})


def ema_weights(state: TrainState) -> TrainState:
  """`state` with its moving-average weights in place of the raw ones, to
  evaluate them with the same eval step."""
  return state.replace(params=state.ema['params'],
                       batch_stats=state.ema['batch_stats'])


def abstract_train_state(model, tx, image_size: int, sharding,
                         ema: bool = False):
  """Shapes, dtypes and placement of the state, without computing it."""
  rng = jax.ShapeDtypeStruct((2,), jnp.uint32)
  shapes = jax.eval_shape(
      lambda r: create_train_state(r, model, tx, image_size, ema), rng)
  return jax.tree.map(
      lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding),
      shapes)
