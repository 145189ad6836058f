r"""The page's Live mode, timed: headless Chromium with a fake camera
(fake_camera.py: a photo's sharp frames, then blurred ones, in a loop)
drives the page for T seconds; prints and writes frame-to-differential
latency percentiles, frames sent, answered, scored and refused, and
whether a backlog grew (at most one frame in flight; the answers' rate as
steady in the run's second half as in its first).

  python experiments/live_camera/latency.py --workdir RUN [--seconds 60] \
      [--output FILE.json] [--photo PHOTO.jpg] [-- --config.serve.KEY=VALUE]
  python experiments/live_camera/latency.py --url http://127.0.0.1:8000 ...

With --workdir it starts `python -m skinjax.serve --workdir RUN --port 0`
on 127.0.0.1 with a token of its own (and stops it); with --url it drives a
service already running, with the token in $SKINJAX_SERVE_TOKEN if any.
Needs Debian's chromium and chromium-driver. The latency is the page's
own: from the frame drawn from the video to its differential shown (JPEG
encoding, upload, scoring, answer). Timing starts at the first frame
scored (compiling and the camera's start are not in it). Exits 1 if no
frame was scored or more than one was ever in flight.
"""

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [REPO, HERE]

import fake_camera  # after sys.path
from skinjax.service import client as client_lib


def chromium(profile, video):
  """Headless Chromium (Debian's, through its chromedriver) whose camera
  plays `video`."""
  missing = [n for n in ('chromium', 'chromedriver') if not shutil.which(n)]
  if missing:
    sys.exit(f'error: {" and ".join(missing)} not found (apt-get install '
             'chromium chromium-driver)')
  os.environ['SE_OFFLINE'] = 'true'  # Selenium Manager: no downloads
  return fake_camera.chromium(profile, [
      *fake_camera.CHROMIUM_ARGUMENTS,
      f'--use-file-for-fake-video-capture={video}'])


def percentile(values, q):
  return round(float(np.percentile(values, q)), 1) if len(values) else None


def rate(times_ms, start_ms, end_ms):
  """Answers per second between two of the page's performance.now()."""
  inside = [t for t in times_ms if start_ms <= t < end_ms]
  return round(1000 * len(inside) / (end_ms - start_ms), 2)


def drive(url, token, video, seconds, profile) -> dict:
  """Live mode on `url` for `seconds` after its first frame scored."""
  from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top
  from selenium.common.exceptions import TimeoutException  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.support import ui  # pylint: disable=g-import-not-at-top
  driver = chromium(profile, video)
  counters = lambda: driver.execute_script(
      'return {page: window.skinjaxLive, requests: window.liveRequests, '
      'now: performance.now(), state: document.getElementById('
      '"live-result").dataset.state, status: document.getElementById('
      '"live-status").textContent};')
  try:
    driver.get(f'{url}/#token={token}' if token else url)
    ui.WebDriverWait(driver, 60).until(lambda d: d.find_element(
        By.ID, 'model-card').text.startswith('Model '))
    driver.execute_script(fake_camera.COUNT_REQUESTS_JS)
    driver.find_element(By.ID, 'live-start').click()
    try:
      ui.WebDriverWait(driver, 120).until(
          lambda d: counters()['page']['scored'] > 0)
    except TimeoutException:
      seen = counters()
      sys.exit(f'error: no frame scored in 120 s; the page says '
               f'{seen["status"]!r}; its counters: {seen["page"]}')
    first = counters()
    samples, messages = [], set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
      time.sleep(0.25)
      seen = counters()
      page = seen['page']
      samples.append(page['sent'] - page['answered'] - page['failed'])
      if seen['state'] in ('refused', 'failed'):
        messages.add(seen['status'])
    last = counters()
    driver.find_element(By.ID, 'live-start').click()  # Stop
  finally:
    driver.quit()
  page, start_ms, end_ms = last['page'], first['now'], last['now']
  latencies = page['latencies_ms'][len(first['page']['latencies_ms']):]
  middle_ms = (start_ms + end_ms) / 2
  half = len(latencies) // 2
  delta = {key: page[key] - first['page'][key]
           for key in ('sent', 'answered', 'scored', 'refused', 'failed')}
  halves = [rate(page['answered_at_ms'], start_ms, middle_ms),
            rate(page['answered_at_ms'], middle_ms, end_ms)]
  in_flight_max = max(last['requests']['max'], page['maxInFlight'])
  return {
      'seconds': round((end_ms - start_ms) / 1000, 2),
      'frames': delta,
      'answered_per_s': rate(page['answered_at_ms'], start_ms, end_ms),
      'latency_ms': {'p50': percentile(latencies, 50),
                     'p95': percentile(latencies, 95),
                     'max': percentile(latencies, 100),
                     'frames': len(latencies)},
      'halves': {'answered_per_s': halves,
                 'latency_p50_ms': [percentile(latencies[:half], 50),
                                    percentile(latencies[half:], 50)]},
      'in_flight_max': in_flight_max,
      'unanswered_max': max(samples, default=0),
      # No backlog: never more than one frame unanswered, and the second
      # half answered at 80% or more of the first half's rate.
      'steady': bool(in_flight_max <= 1 and max(samples, default=0) <= 1
                     and halves[1] >= 0.8 * halves[0]),
      'messages': sorted(messages),  # of frames refused or failed
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  where = parser.add_mutually_exclusive_group(required=True)
  where.add_argument('--workdir', help='a run folder: start the service on it')
  where.add_argument('--url', help='a service already running')
  parser.add_argument('--seconds', type=float, default=60)
  parser.add_argument('--output', help='where to write the figures (JSON)')
  parser.add_argument('--photo', help='the photo the camera films (default: '
                      'a synthetic lesion for a model of synthetic_lesions, '
                      'else a HAM10000 photo under ../shared/data if any)')
  parser.add_argument('--size', default='640x480',
                      help="the camera's frames, WIDTHxHEIGHT (even)")
  parser.add_argument('--fps', type=int, default=15)
  parser.add_argument('--sharp_s', type=float, default=8,
                      help='seconds of sharp frames, then...')
  parser.add_argument('--blurred_s', type=float, default=2,
                      help='...of blurred ones, in a loop')
  args, service_flags = parser.parse_known_args()
  service_flags = [f for f in service_flags if f != '--']
  width, height = (int(n) for n in args.size.split('x'))

  with tempfile.TemporaryDirectory(prefix='skinjax-live-') as scratch:
    process = None
    if args.workdir:
      token = secrets.token_urlsafe(24)
      log = os.path.join(scratch, 'service.log')
      process, url = client_lib.start_service(
          args.workdir, service_flags, log,
          env={'SKINJAX_SERVE_TOKEN': token}, cwd=REPO)
    else:
      url, token = args.url.rstrip('/'), os.environ.get('SKINJAX_SERVE_TOKEN')
    try:
      _, card = client_lib.Client(url, token).model()
      if args.photo:
        photo = np.asarray(Image.open(args.photo).convert('RGB').resize(
            (width, height), Image.Resampling.BICUBIC))
        source = args.photo
      else:  # a photo like the model's training photos: the gate passes it
        synthetic = card['dataset'].startswith('synthetic')
        photo = fake_camera.skin_photo(width, height, synthetic)
        source = fake_camera.photo_source(synthetic)
      video = os.path.join(scratch, 'camera.y4m')
      fake_camera.write_y4m(video, fake_camera.frames(
          photo, args.fps, args.sharp_s, args.blurred_s), args.fps)
      figures = drive(url, token, video, args.seconds,
                      os.path.join(scratch, 'profile'))
    finally:
      if process is not None:
        process.terminate()
        process.wait(timeout=60)

  figures = {
      'model': {key: card.get(key) for key in ('model', 'dataset',
                                                'image_size', 'tta')},
      'checkpoint_step': card['version']['checkpoint_step'],
      'camera': {'size': args.size, 'fps': args.fps, 'sharp_s': args.sharp_s,
                 'blurred_s': args.blurred_s, 'photo': source},
      'service_flags': service_flags, 'cpus': os.cpu_count(),
      **figures}
  latency = figures['latency_ms']
  frames = figures['frames']
  print(f"{figures['model']['model']} on {figures['model']['dataset']} "
        f"(step {figures['checkpoint_step']}), {figures['seconds']} s: "
        f"frame to differential p50 {latency['p50']} ms, p95 "
        f"{latency['p95']} ms; frames sent {frames['sent']}, answered "
        f"{frames['answered']} ({figures['answered_per_s']}/s; halves "
        f"{figures['halves']['answered_per_s']}), scored {frames['scored']}, "
        f"refused {frames['refused']}, failed {frames['failed']}; in flight "
        f"at most {figures['in_flight_max']}; "
        + ('steady' if figures['steady'] else 'NOT steady (a backlog, or '
           'the second half answered under 80% of the first\'s rate)'))
  if args.output:
    with open(args.output, 'w') as f:
      json.dump(figures, f, indent=1)
  if not frames['scored'] or figures['in_flight_max'] > 1:
    sys.exit(1)


if __name__ == '__main__':
  main()
