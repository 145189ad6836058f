r"""A bounded load test of skinjax.serve on 127.0.0.1: N clients post photos
for T seconds (or until --max_requests), each waiting for its answer before
sending the next; prints and writes requests per second, latency
percentiles and the batch sizes the service actually formed.

  python experiments/serving/load_test.py --workdir RUN [--clients 8] \
      [--seconds 20] [--photos_per_request 1] [--output FILE.json] \
      [-- --config.serve.max_batch_size=16 ...]   # flags for the service
  python experiments/serving/load_test.py --url http://127.0.0.1:8000 ...

With --workdir it starts `python -m skinjax.serve --workdir RUN --port 0`
itself (and stops it); with --url it loads a service already running. A
token in $SKINJAX_SERVE_TOKEN is sent with every request. The photos are
--photos files or, by default, 16 generated 800x600 JPEGs (smooth random
colour fields: scoring costs the same whatever they show). Exits 1 if any
request failed.
"""

import argparse
import io
import json
import os
import sys
import tempfile
import threading
import time

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
sys.path.insert(0, REPO)

from skinjax.service import client as client_lib  # after sys.path

def generated_photos(count: int, width=800, height=600) -> list:
  photos = []
  for seed in range(count):
    coarse = np.random.default_rng(seed).integers(0, 255, (6, 8, 3), np.uint8)
    image = Image.fromarray(coarse).resize((width, height),
                                           Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format='JPEG', quality=90)
    photos.append((f'generated_{seed}.jpg', buffer.getvalue()))
  return photos


def read_photos(paths) -> list:
  photos = []
  for path in paths:
    with open(path, 'rb') as f:
      photos.append((os.path.basename(path), f.read()))
  return photos


def _client_loop(url, token, photos, per_request, start_index, deadline,
                 budget, results):
  """Posts until the deadline or the shared request budget runs out."""
  client = client_lib.Client(url, token)
  index = start_index
  while time.monotonic() < deadline:
    with budget['lock']:
      if budget['left'] <= 0:
        break
      budget['left'] -= 1
    batch = [photos[(index + i) % len(photos)] for i in range(per_request)]
    index += per_request
    began = time.perf_counter()
    try:
      status, body = client.predict(batch)
      error = None if status == 200 else body.get('error')
    except (OSError, ValueError) as e:
      status, error = None, f'{type(e).__name__}: {e}'
    results.append((began, time.perf_counter() - began, status, error))
  client.close()


def _difference(after: dict, before: dict) -> dict:
  return {size: count - before.get(size, 0) for size, count in after.items()
          if count - before.get(size, 0)}


def run(url, token, photos, clients: int, seconds: float, per_request: int,
        max_requests: int) -> dict:
  """Loads the service at `url`; the figures, as a dict."""
  monitor = client_lib.Client(url, token)
  _, model = monitor.model()
  _, before = monitor.statistics()
  results = []
  budget = {'left': max_requests, 'lock': threading.Lock()}
  deadline = time.monotonic() + seconds
  threads = [threading.Thread(
      target=_client_loop,
      args=(url, token, photos, per_request, i * per_request, deadline,
            budget, results)) for i in range(clients)]
  began = time.perf_counter()
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  elapsed = time.perf_counter() - began
  _, after = monitor.statistics()
  monitor.close()
  latencies = np.array([r[1] for r in results if r[2] == 200]) * 1000
  failures = [r for r in results if r[2] != 200]
  formed = _difference(after['photos_per_batch'], before['photos_per_batch'])
  batches = sum(formed.values())
  photos_scored = sum(int(size) * count for size, count in formed.items())
  return {
      'model': {key: model.get(key) for key in
                ('model', 'image_size', 'tta', 'batching', 'version')},
      'clients': clients, 'seconds': round(elapsed, 2),
      'photos_per_request': per_request,
      'requests': len(results), 'failed': len(failures),
      'failures': sorted({f'{r[2]}: {r[3]}' for r in failures})[:10],
      'requests_per_second': round(len(results) / elapsed, 2),
      'photos_per_second': round(len(results) * per_request / elapsed, 2),
      'latency_ms': {name: round(float(np.percentile(latencies, q)), 1)
                     for name, q in (('p50', 50), ('p90', 90), ('p99', 99),
                                     ('max', 100))} if len(latencies) else {},
      'batches': batches,
      'photos_per_batch': formed,
      'padded_shapes': _difference(after['padded_shapes'],
                                   before['padded_shapes']),
      'mean_photos_per_batch': round(photos_scored / batches, 2)
                               if batches else None,
  }


def main():
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  target = parser.add_mutually_exclusive_group(required=True)
  target.add_argument('--workdir', help='run folder to start the service on')
  target.add_argument('--url', help='a running service, http://HOST:PORT')
  parser.add_argument('--clients', type=int, default=8)
  parser.add_argument('--seconds', type=float, default=20)
  parser.add_argument('--max_requests', type=int, default=100_000)
  parser.add_argument('--photos_per_request', type=int, default=1)
  parser.add_argument('--photos', nargs='*', help='photo files to send')
  parser.add_argument('--output', help='write the figures here (JSON)')
  parser.add_argument('service_flags', nargs='*',
                      help='after --: flags for skinjax.serve')
  args = parser.parse_args()
  if min(args.clients, args.seconds, args.max_requests,
         args.photos_per_request) <= 0:
    parser.error('--clients, --seconds, --max_requests and '
                 '--photos_per_request must be positive')
  photos = read_photos(args.photos) if args.photos else generated_photos(16)
  token = os.environ.get('SKINJAX_SERVE_TOKEN')
  process = None
  if args.workdir:
    log_path = os.path.join(tempfile.mkdtemp(prefix='load_test-'),
                            'service.log')
    process, url = client_lib.start_service(args.workdir, args.service_flags,
                                            log_path, cwd=REPO)
  else:
    url = args.url
  try:
    figures = run(url, token, photos, args.clients, args.seconds,
                  args.photos_per_request, args.max_requests)
  finally:
    if process is not None:
      process.terminate()
      process.wait(timeout=60)
  record = {
      'command': ' '.join([os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:]),
      'photo_sizes': sorted({Image.open(io.BytesIO(data)).size
                             for _, data in photos}),
      'machine': {'cpus': os.cpu_count(),
                  'load_average_after': [round(x, 2) for x in os.getloadavg()]},
      **figures}
  print(json.dumps(record, indent=2))
  if args.output:
    with open(args.output, 'w') as f:
      json.dump(record, f, indent=2)
  sys.exit(1 if figures['failed'] or not figures['requests'] else 0)


if __name__ == '__main__':
  main()
