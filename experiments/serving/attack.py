r"""skinjax.serve attacked from 127.0.0.1 as a host on a clinic network could,
bounded in requests and time; prints and writes what real clients saw and
what the service's memory did.

  python experiments/serving/attack.py --workdir RUN [--seconds 20] \
      [--serve_repo DIR] [--output FILE.json]

It starts `python -m skinjax.serve --workdir RUN --port 0` from
--serve_repo (default: this checkout; point it at a checkout of an older
commit to measure that code with the same attacks) with a token and the
service's defaults, then runs in turn:

1. baseline: 4 tokened clients, one photo per request, for --seconds;
2. the same 4 clients while 200 idle sockets and 20 tokened slow-body
   sockets (a byte every 2 s) stay open, each reopened as soon as the
   service closes it; then memory 10 s after the attackers close;
3. eight concurrent 29-MiB uploads (noise PNGs, 10 Mpx each): peak memory
   and memory 10 s after;
4. a request of sixteen 49-Mpx PNGs, and 0.3 s later a one-photo request:
   the one-photo request's latency (then the same with two 49-Mpx photos,
   within the default pixel budget).

Memory is the service process's resident set (VmRSS), sampled every 0.2 s.
"""

import argparse
import concurrent.futures
import io
import json
import os
import socket
import sys
import tempfile
import threading
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [REPO, HERE]

import load_test  # pylint: disable=g-import-not-at-top
from skinjax.service import client as client_lib  # after sys.path

TOKEN = 'attack-' + os.urandom(16).hex()


def rss_mib(pid: int) -> float:
  with open(f'/proc/{pid}/status') as f:
    for line in f:
      if line.startswith('VmRSS:'):
        return int(line.split()[1]) / 1024
  raise RuntimeError(f'no VmRSS for process {pid}')


class PeakMemory:
  """The largest VmRSS of `pid` while the block runs."""

  def __init__(self, pid):
    self._pid, self.peak = pid, 0.0
    self._stop = threading.Event()

  def __enter__(self):
    def sample():
      while not self._stop.wait(0.2):
        self.peak = max(self.peak, rss_mib(self._pid))
    self._thread = threading.Thread(target=sample, daemon=True)
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()
    self.peak = max(self.peak, rss_mib(self._pid))


def clients(url, photos, seconds: float, count: int = 4) -> dict:
  """load_test's closed loop: `count` clients, one photo a request."""
  results, budget = [], {'left': 10**6, 'lock': threading.Lock()}
  deadline = time.monotonic() + seconds
  threads = [threading.Thread(target=load_test._client_loop, args=(  # pylint: disable=protected-access
      url, TOKEN, photos, 1, i, deadline, budget, results))
             for i in range(count)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  latencies = np.array([r[1] for r in results if r[2] == 200]) * 1000
  failures = [r[3] or r[2] for r in results if r[2] != 200]
  return {'requests': len(results), 'failed': len(failures),
          'first_failures': sorted(set(map(str, failures)))[:3],
          'latency_ms': {q: round(float(np.percentile(latencies, p)), 1)
                         for q, p in (('p50', 50), ('p99', 99))}
                        if len(latencies) else None}


class Attackers:
  """`idle` sockets that never send and `slow` ones that send a tokened
  POST's headers then a byte every 2 s, each reopened once the service
  closes it; counts the reopenings."""

  def __init__(self, address, idle: int, slow: int):
    self._address, self._stop = address, threading.Event()
    self.reopened = {'idle': 0, 'slow': 0}
    self._sockets = [('idle', self._open('idle')) for _ in range(idle)] + [
        ('slow', self._open('slow')) for _ in range(slow)]
    self._thread = threading.Thread(target=self._run, daemon=True)
    self._thread.start()

  def _open(self, kind):
    try:
      sock = socket.create_connection(self._address, timeout=5)
    except OSError:
      return None
    sock.setblocking(False)
    if kind == 'slow':
      head = ('POST /v1/predict HTTP/1.1\r\nHost: %s:%d\r\n' % self._address
              + f'Authorization: Bearer {TOKEN}\r\nContent-Type: multipart/'
              'form-data; boundary=x\r\nContent-Length: 1000000\r\n\r\n')
      try:
        sock.send(head.encode())
      except OSError:
        pass
    return sock

  @staticmethod
  def _closed(sock) -> bool:
    if sock is None:
      return True
    try:
      return sock.recv(65536) == b''
    except BlockingIOError:
      return False
    except OSError:
      return True

  def _run(self):
    tick = 0
    while not self._stop.wait(0.5):
      tick += 1
      for i, (kind, sock) in enumerate(self._sockets):
        if kind == 'slow' and sock is not None and tick % 4 == 0:
          try:
            sock.send(b'-')
          except OSError:
            pass
        if self._closed(sock):
          if sock is not None:
            sock.close()
          self._sockets[i] = (kind, self._open(kind))
          self.reopened[kind] += 1

  def close(self):
    self._stop.set()
    self._thread.join()
    for _, sock in self._sockets:
      if sock is not None:
        sock.close()


def _png(array) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format='PNG', compress_level=1)
  return buffer.getvalue()


def _timed_predict(url, photos) -> tuple:
  began = time.perf_counter()
  try:
    status, body = client_lib.Client(url, TOKEN, timeout=300).predict(photos)
  except (OSError, ValueError) as e:
    status, body = None, {'error': f'{type(e).__name__}: {e}'}
  return status, round(time.perf_counter() - began, 2), (
      None if status == 200 else str(body.get('error'))[:120])


def big_beside_small(url, big, small) -> dict:
  """The big request, and 0.3 s later the small one: status, seconds and
  error of each."""
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    first = pool.submit(_timed_predict, url, big)
    time.sleep(0.3)
    second = pool.submit(_timed_predict, url, small)
    return {'big': first.result(), 'one_photo': second.result()}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--serve_repo', default=REPO)
  parser.add_argument('--seconds', type=float, default=20)
  parser.add_argument('--output')
  args = parser.parse_args()
  photos = load_test.generated_photos(16)
  log = os.path.join(tempfile.mkdtemp(), 'service.log')
  process, url = client_lib.start_service(
      args.workdir, [], log, env={'SKINJAX_SERVE_TOKEN': TOKEN},
      cwd=args.serve_repo)
  address = ('127.0.0.1', int(url.rsplit(':', 1)[1]))
  figures = {'serve_repo': args.serve_repo, 'seconds': args.seconds}
  try:
    clients(url, photos, 3)  # warm
    figures['baseline'] = clients(url, photos, args.seconds)
    time.sleep(3)
    figures['rss_before_mib'] = round(rss_mib(process.pid))
    with PeakMemory(process.pid) as peak:
      attackers = Attackers(address, idle=200, slow=20)
      time.sleep(1)
      figures['under_attack'] = clients(url, photos, args.seconds)
      attackers.close()
    figures['under_attack']['attackers_reopened'] = attackers.reopened
    figures['under_attack']['peak_rss_mib'] = round(peak.peak)
    time.sleep(10)
    figures['rss_10s_after_attack_mib'] = round(rss_mib(process.pid))
    noise = _png(np.random.default_rng(0).integers(
        0, 255, (3200, 3200, 3), np.uint8))
    with PeakMemory(process.pid) as peak, \
        concurrent.futures.ThreadPoolExecutor(8) as pool:
      uploads = list(pool.map(lambda i: _timed_predict(
          url, [(f'noise{i}.png', noise)]), range(8)))
    time.sleep(10)
    figures['eight_uploads'] = {
        'body_mib': round(len(noise) / 2**20, 1), 'answers': uploads,
        'peak_rss_mib': round(peak.peak),
        'rss_10s_after_mib': round(rss_mib(process.pid))}
    huge = _png(np.zeros((7000, 7000), np.uint8))
    one = [photos[0]]
    figures['sixteen_49mpx_beside_one'] = big_beside_small(
        url, [(f'{i}.png', huge) for i in range(16)], one)
    figures['two_49mpx_beside_one'] = big_beside_small(
        url, [(f'{i}.png', huge) for i in range(2)], one)
    figures['rss_end_mib'] = round(rss_mib(process.pid))
  finally:
    process.terminate()
    process.wait(timeout=60)
  print(json.dumps(figures, indent=1))
  if args.output:
    with open(args.output, 'w') as f:
      json.dump(figures, f, indent=1)


if __name__ == '__main__':
  main()
