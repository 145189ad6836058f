"""What the service runs for a restored checkpoint: an uploaded photo made
into the model's input (its skin tone and quality measured) exactly as
predict makes a photo file into it, and the functions of a batch that the
device worker runs (logits; Grad-CAM maps of given classes), one compiled
program per batch shape."""

import io
import time

import jax
import numpy as np

from skinjax.inference import quality
from skinjax.inference import saliency
from skinjax.parallel import sharding


def prepare_photo(data: bytes, recipe, skin_region: str, gate) -> tuple:
  """An uploaded photo as the model sees it (uint8 HxWx3), its skin tone
  and the quality gate's verdict (quality.judge), all as predict has them
  for a photo file: through the run's preparation Recipe. Raises
  decode.BadImageError with the reason."""
  jpeg = recipe.normalise(data)
  return (recipe.model_input(jpeg), *quality.judge(jpeg, skin_region, gate))


def device_functions(checkpoint) -> dict:
  """{'predict': images -> {'logits', 'features'} (what the unfamiliar flag
  reads), 'grad_cam': (images, classes) -> maps}, numpy in and out, for
  batches that split evenly over the devices."""
  mesh = checkpoint.mesh

  def predict(images):
    count = len(images)
    batch = sharding.shard_batch(
        {'image': images, 'label': np.zeros(count, np.int32),
         'mask': np.ones(count, bool)}, mesh)
    result = checkpoint.eval_step(checkpoint.state, batch)
    return {key: np.asarray(jax.device_get(result[key]))
            for key in ('logits', 'features')}

  cam_fn = jax.jit(lambda variables, images, classes: saliency.grad_cam(
      checkpoint.model, variables, images, classes))
  variables = {'params': checkpoint.state.params,
               'batch_stats': checkpoint.state.batch_stats}

  def grad_cam(images, classes):
    batch = sharding.shard_batch({'images': images, 'classes': classes}, mesh)
    return np.asarray(jax.device_get(
        cam_fn(variables, batch['images'], batch['classes'])))

  return {'predict': predict, 'grad_cam': grad_cam}


def warm_up(predict, shapes, image_size: int) -> float:
  """Compiles `predict` for every batch shape; the seconds it took."""
  start = time.perf_counter()
  for size in shapes:
    predict(np.zeros((size, image_size, image_size, 3), np.uint8))
  return time.perf_counter() - start


def overlay_png(image: np.ndarray, cam: np.ndarray, title: str) -> bytes:
  """saliency's overlay figure of the photo and its Grad-CAM map, as PNG
  bytes (in memory: the service writes nothing to disk)."""
  buffer = io.BytesIO()
  saliency.save_overlay(image, cam, title, buffer)
  return buffer.getvalue()
