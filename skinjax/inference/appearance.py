"""What a photo looks like, described without any model: colour and texture
statistics, and how far a photo's description lies from those of a run's
training photos. The quality gate's 'no skin in view' check rests on it.

Why not the model's own features (the 'unfamiliar' flag does that): how a
particular network's features fall for a cat or a rocket is an accident of
its training; a network trained on 1,500 steps of synthetic lesions puts
scikit-image's cat among its lesions. These statistics are the same for
every model, and the run's training photos say what 'skin in view' looks
like for it (dermoscopy, clinical photos or synthetic ones).

The description is 23 numbers per photo at a fixed working scale (short side
128 px) and a fixed exposure (a gain puts its bright end at one level): the share of skin-coloured, grey and other-hued pixels, lightness,
chroma and the spread of the skin pixels' colour in CIELAB, hue entropy and
saturation; fine and coarse texture energy, edge density and orientation
coherence (fur and fabric are more oriented than skin). The distance is
Mahalanobis to the training photos' mean, its covariance shrunk towards the
diagonal so a few hundred photos suffice.
"""

import numpy as np
from PIL import Image
from scipy import ndimage

from skinjax.inference import skin_tone

# Of the description: statistics fitted with another are not compared with
# this one's (quality.current), and evaluate refits them.
VERSION = 4
WORKING_SIDE = 128
EXPOSURE_LEVEL = 200.0  # luma of the 95th percentile after normalising
FEATURE_NAMES = (
    'skin_share', 'grey_share', 'other_hue_share', 'median_chroma',
    'lightness_mean', 'lightness_std', 'a_mean', 'b_mean', 'skin_a_std',
    'skin_b_std', 'log_fine_energy', 'log_coarse_energy', 'fine_to_coarse',
    'edge_share', 'log_laplacian_variance', 'coherence_fine',
    'log_structure_fine', 'coherence_coarse', 'log_structure_coarse',
    'centre_skin_share', 'hue_entropy', 'saturation_mean', 'saturation_std')
# Of the covariance's diagonal mixed into it (Ledoit-Wolf-style shrinkage).
_SHRINKAGE = 0.05
# The smallest difference worth noticing in each statistic, added to the
# covariance's diagonal (squared): where the training photos never vary (no
# grey pixel in any synthetic lesion), a photo is not infinitely far for
# differing by a hair.
_RESOLUTION = np.array([
    0.01, 0.01, 0.01, 0.5,  # shares of pixels; chroma
    0.5, 0.5, 0.5, 0.5, 0.25, 0.25,  # CIELAB means and spreads
    0.05, 0.05, 0.05, 0.01, 0.05,  # log energies and their ratio; edges
    0.01, 0.05, 0.01, 0.05,  # orientation coherence and energy
    0.01, 0.05, 0.01, 0.01])  # centre's skin; hue entropy; saturation


def shrunk(rgb: np.ndarray, side: int) -> np.ndarray:
  """uint8 RGB with short side `side` (smaller photos as they are)."""
  rgb = np.asarray(rgb)[..., :3]
  height, width = rgb.shape[:2]
  scale = side / min(height, width)
  if scale >= 1:
    return rgb
  size = (max(1, round(width * scale)), max(1, round(height * scale)))
  return np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))


def working_image(rgb: np.ndarray) -> np.ndarray:
  """The photo at the working scale (short side WORKING_SIDE)."""
  return shrunk(rgb, WORKING_SIDE)


def luma(rgb: np.ndarray) -> np.ndarray:
  """Rec. 601 luma (0-255, float32) of uint8 RGB."""
  return rgb[..., :3].astype(np.float32) @ np.float32([0.299, 0.587, 0.114])


def exposure_normalised(rgb: np.ndarray) -> np.ndarray:
  """The photo with a gain that puts the 95th percentile of its luma at
  EXPOSURE_LEVEL: a dim photo of skin is still skin (exposure is the
  gate's exposure checks' business), and darker skin is not described as
  further from light skin than its colour makes it."""
  gain = EXPOSURE_LEVEL / max(float(np.quantile(luma(rgb), 0.95)), 8.0)
  return np.clip(rgb * gain, 0, 255).astype(np.uint8)


def describe(rgb: np.ndarray) -> np.ndarray:
  """The photo's 23 statistics (FEATURE_NAMES), float64, of its working
  image with its exposure normalised."""
  rgb = exposure_normalised(working_image(rgb))
  lab = skin_tone.rgb_to_lab(rgb)
  lightness, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
  chroma = np.hypot(a, b)
  hue = np.degrees(np.arctan2(b, a))
  skin = skin_tone._skin_coloured(lab)  # pylint: disable=protected-access
  skin_lab = lab[skin] if skin.sum() > 16 else lab.reshape(-1, 3)
  luma = lightness / 100.0
  fine = luma - ndimage.gaussian_filter(luma, 1.5)
  coarse = (ndimage.gaussian_filter(luma, 1.5)
            - ndimage.gaussian_filter(luma, 4))
  smooth = ndimage.gaussian_filter(luma, 1.0)
  grad_y, grad_x = np.gradient(smooth)
  laplacian = ndimage.laplace(ndimage.gaussian_filter(luma, 0.7))
  height, width = luma.shape
  centre = lab[height // 4:3 * height // 4, width // 4:3 * width // 4]
  counts = np.histogram(hue[chroma > 8], bins=12, range=(-180, 180))[0] + 1e-3
  shares = counts / counts.sum()
  top = rgb.max(axis=-1).astype(np.float64)
  saturation = (top - rgb.min(axis=-1)) / (top + 1.0)
  log = lambda x: float(np.log(x + 1e-4))
  values = [
      skin.mean(), (chroma < 6).mean(),
      ((chroma > 12) & ((hue < -20) | (hue > 110))).mean(),
      np.median(chroma), lightness.mean(), lightness.std(), a.mean(),
      b.mean(), skin_lab[:, 1].std(), skin_lab[:, 2].std(), log(fine.std()),
      log(coarse.std()), log(fine.std()) - log(coarse.std()),
      (np.hypot(grad_x, grad_y) > 0.03).mean(),
      float(np.log(laplacian.var() + 1e-8))]
  values += _orientation(luma, 2.0) + _orientation(luma, 5.0)
  values += [skin_tone._skin_coloured(centre).mean(),  # pylint: disable=protected-access
             -(shares * np.log(shares)).sum(), saturation.mean(),
             saturation.std()]
  return np.asarray(values, np.float64)


def _orientation(luma: np.ndarray, window: float) -> list:
  """[mean coherence, log mean energy] of the structure tensor averaged
  over `window` px: 1 where all gradients nearby share one direction."""
  grad_y, grad_x = np.gradient(ndimage.gaussian_filter(luma, 0.7))
  xx, yy, xy = (ndimage.gaussian_filter(v, window)
                for v in (grad_x * grad_x, grad_y * grad_y, grad_x * grad_y))
  energy = xx + yy + 1e-9
  coherence = np.sqrt((xx - yy)**2 + 4 * xy**2) / energy
  return [float(coherence.mean()), float(np.log(energy.mean()))]


def fit(descriptions: np.ndarray) -> dict:
  """{'mean', 'precision'} of the photos' descriptions (n, 23), n >= 2."""
  descriptions = np.asarray(descriptions, np.float64)
  mean = descriptions.mean(axis=0)
  covariance = np.cov(descriptions, rowvar=False)
  covariance = ((1 - _SHRINKAGE) * covariance
                + _SHRINKAGE * np.diag(np.diag(covariance))
                + np.diag(_RESOLUTION**2))
  return {'mean': mean, 'precision': np.linalg.inv(covariance)}


assert len(_RESOLUTION) == len(FEATURE_NAMES)


def distance(model: dict, descriptions: np.ndarray) -> np.ndarray:
  """Squared Mahalanobis distance of each description (n, 23) to `model`."""
  centred = np.atleast_2d(descriptions) - model['mean']
  return np.einsum('ij,jk,ik->i', centred, model['precision'], centred)
