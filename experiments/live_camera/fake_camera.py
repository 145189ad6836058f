"""A fake camera for the page's Live mode: a Y4M video (YUV4MPEG2, 4:2:0)
that headless Chromium plays as its camera, and what a test or benchmark
reads back from the page.

  chromium --use-fake-device-for-media-stream --use-fake-ui-for-media-stream
           --use-file-for-fake-video-capture=FILE.y4m

Chromium plays the file in a loop at its frame rate. The video alternates
segments of sharp frames of one skin photo (moving a few pixels from frame
to frame, with sensor noise) and of the same frames heavily blurred, which
the service's quality gate refuses ('hold still').
"""

import glob
import os
import shutil

import numpy as np
from PIL import Image
from PIL import ImageFilter

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
# A real photo, where this checkout has the shared data (not in CI).
HAM_PHOTOS = os.path.join(REPO, '..', 'shared', 'data', 'ham10000',
                          'images_by_dx', 'nv', '*.jpg')

CHROMIUM_ARGUMENTS = ('--use-fake-device-for-media-stream',
                      '--use-fake-ui-for-media-stream')

# Run in the page before Live starts (Selenium's scripts are not held to
# the page's CSP): counts the page's live requests where they leave it,
# independently of the page's own counters.
COUNT_REQUESTS_JS = """
const counted = window.liveRequests = {now: 0, max: 0, total: 0};
const originalFetch = window.fetch;
window.fetch = async function (resource, options) {
  const live = String(resource).includes('usable_only=true');
  if (live) {
    counted.total++;
    counted.max = Math.max(counted.max, ++counted.now);
  }
  try {
    return await originalFetch.call(this, resource, options);
  } finally {
    if (live) {
      counted.now--;
    }
  }
};
"""


SYNTHETIC = 'synthetic_lesions generator (class 0, seed 0)'


def photo_source(synthetic=False) -> str:
  """The photo skin_photo films: the first HAM10000 nevus where
  ../shared/data has them, else a synthetic lesion."""
  paths = [] if synthetic else sorted(glob.glob(HAM_PHOTOS))
  return os.path.normpath(paths[0]) if paths else SYNTHETIC


def skin_photo(width=640, height=480, synthetic=False) -> np.ndarray:
  """photo_source's photo, resized: uint8 [height, width, 3]."""
  source = photo_source(synthetic)
  if source != SYNTHETIC:
    photo = Image.open(source).convert('RGB')
  else:
    from skinjax.data.builders import lesion_drawing  # pylint: disable=g-import-not-at-top
    photo = Image.fromarray(lesion_drawing.draw_image(
        np.random.default_rng(0), 0, max(width, height)))
  return np.asarray(photo.resize((width, height), Image.Resampling.BICUBIC))


def frames(photo: np.ndarray, fps=10, sharp_s=3.0, blurred_s=3.0,
           blur_radius=10, seed=0):
  """Yields the video's frames: `sharp_s` seconds of sharp ones, then
  `blurred_s` of blurred ones. Each frame is the photo shifted by up to 4
  pixels, with sensor noise (sharp) or then blurred with a Gaussian of
  `blur_radius` pixels (blurred)."""
  rng = np.random.default_rng(seed)
  for index in range(round(fps * (sharp_s + blurred_s))):
    dx, dy = rng.integers(-4, 5, 2)
    frame = np.roll(photo, (dy, dx), axis=(0, 1)).astype(np.float32)
    frame = np.clip(frame + rng.normal(0, 3, frame.shape), 0, 255).astype(
        np.uint8)
    if index >= fps * sharp_s:
      frame = np.asarray(Image.fromarray(frame).filter(
          ImageFilter.GaussianBlur(blur_radius)))
    yield frame


def to_yuv420(rgb: np.ndarray) -> bytes:
  """One frame as planar Y, U, V (BT.601, video range; chroma averaged over
  2x2 blocks), as a Y4M frame holds it."""
  r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
  y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
  u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
  v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
  h, w = y.shape
  half = lambda c: c.reshape(h // 2, 2, w // 2, 2).mean((1, 3))
  return b''.join(np.clip(p, 0, 255).round().astype(np.uint8).tobytes()
                  for p in (y, half(u), half(v)))


def write_y4m(path, video_frames, fps=10) -> int:
  """Writes the frames (uint8 RGB, even width and height) as a Y4M file;
  returns how many."""
  count = 0
  with open(path, 'wb') as f:
    for frame in video_frames:
      if not count:
        height, width, _ = frame.shape
        f.write(f'YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 '
                'C420jpeg\n'.encode())
      f.write(b'FRAME\n' + to_yuv420(frame))
      count += 1
  return count


def chromium(profile, arguments=()):
  """Debian's headless Chromium driven by Selenium through Debian's
  chromedriver (so Selenium Manager downloads nothing), its profile in
  `profile`, its console logged, with `arguments` too (CHROMIUM_ARGUMENTS
  and --use-file-for-fake-video-capture=FILE.y4m for the fake camera)."""
  from selenium import webdriver  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.chrome import service  # pylint: disable=g-import-not-at-top
  options = webdriver.ChromeOptions()
  options.binary_location = shutil.which('chromium')
  for argument in ('--headless', '--no-sandbox', '--disable-gpu',
                   '--no-first-run', '--disable-background-networking',
                   '--disable-component-update', '--disable-sync',
                   f'--user-data-dir={profile}', '--window-size=1000,1400',
                   *arguments):
    options.add_argument(argument)
  options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
  return webdriver.Chrome(service=service.Service(shutil.which('chromedriver')),
                          options=options)
