"""skinjax.serve attacked as a host on the clinic network would, for real,
on 127.0.0.1: idle, slow-header and slow-body sockets beside real requests,
a forged Host, clients that hang up behind a long decode, wrong tokens;
and the pieces that make it hold (turns, the body budget, the device
thread's death) on their own. The service is conftest's (connection
deadlines of seconds, a cap of 64 connections, one decode thread)."""

import asyncio
import concurrent.futures
import ctypes
import http.client
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time

import numpy as np
import pytest
import uvicorn

from helpers import SERVICE_TOKEN
import image_trees
from skinjax.config import defaults
from skinjax.service import access
from skinjax.service import app as service_app
from skinjax.service import batching
from skinjax.service import client as client_lib
from skinjax.service import scoring
from skinjax.service import turns
from skinjax.service import uploads


def _address(url):
  host, port = url.split('//')[1].split(':')
  return host, int(port)


def _client(url, token=SERVICE_TOKEN):
  return client_lib.Client(url, token, timeout=60)


def _photo(seed):
  return image_trees.encode(image_trees.photo(seed, 64, 48))


def _statistics(url):
  status, body = _client(url).statistics()
  assert status == 200, body
  return body


def _closed_by_server(sock, seconds: float) -> bool:
  """Whether the service closes `sock` within `seconds` (reading what it
  may send first, such as a 408)."""
  sock.settimeout(seconds)
  try:
    while sock.recv(4096):
      pass
    return True
  except ConnectionResetError:
    return True
  except socket.timeout:
    return False


def _post_head(url, length, content_type='multipart/form-data; boundary=b'):
  """The head of a tokened POST /v1/predict of a `length`-byte body."""
  return ('POST /v1/predict HTTP/1.1\r\nHost: %s:%d\r\n' % _address(url) +
          f'Authorization: Bearer {SERVICE_TOKEN}\r\n'
          f'Content-Type: {content_type}\r\n'
          f'Content-Length: {length}\r\n\r\n').encode()


def test_idle_and_slow_sockets_do_not_starve_requests(service):
  """100 idle sockets, 10 sending headers a byte at a time and 5 sending a
  tokened body a byte at a time, 115 in all against a cap of 64: a real
  request is answered, and every attacker's socket is closed (evicted, or
  past its header deadline or the minimum body rate)."""
  url, _ = service
  address = _address(url)
  before = _statistics(url)['connections']['closed']
  idle = [socket.create_connection(address) for _ in range(100)]
  slow_headers = [socket.create_connection(address) for _ in range(10)]
  slow_bodies = [socket.create_connection(address) for _ in range(5)]
  for sock in slow_bodies:
    sock.sendall(_post_head(url, 100_000) + b'-')
  status, body = _client(url).predict([('a.jpg', _photo(1))])
  assert status == 200, body
  assert _client(url).healthz() == (200, {'status': 'ok'})
  deadline = time.monotonic() + 8
  trickling = slow_headers + slow_bodies
  while trickling and time.monotonic() < deadline:
    for sock in list(trickling):
      try:
        sock.sendall(b'G' if sock in slow_headers else b'-')
      except OSError:
        trickling.remove(sock)
    time.sleep(0.25)
  assert not trickling, f'{len(trickling)} slow sockets still open'
  assert all(_closed_by_server(sock, 5) for sock in idle)
  for sock in idle + slow_headers + slow_bodies:
    sock.close()
  after = _statistics(url)['connections']['closed']
  closed = {k: after.get(k, 0) - before.get(k, 0) for k in after}
  assert closed.get('evicted', 0) >= 115 - 64, closed
  assert closed.get('body_min_bytes_per_s', 0) == 5, closed
  assert closed.get('evicted', 0) + closed.get('header_timeout_s', 0) >= 110
  status, body = _client(url).predict([('a.jpg', _photo(2))])
  assert status == 200, body


def _raw_request(url, request: bytes) -> tuple:
  with socket.create_connection(_address(url), timeout=30) as sock:
    sock.sendall(request)
    response = b''
    while chunk := sock.recv(65536):
      response += chunk
  head, _, body = response.partition(b'\r\n\r\n')
  return int(head.split()[1]), head.decode('latin-1'), body


def test_a_forged_host_is_refused(service):
  """DNS rebinding: a page on another name reaches 127.0.0.1 and says its
  own name in Host; it gets 400, and nothing echoes the name."""
  url, _ = service
  for host, expected in (('attacker.example', 400),
                         ('attacker.example:%d' % _address(url)[1], 400),
                         ('127.0.0.1:%d' % _address(url)[1], 200),
                         ('localhost', 200)):
    status, head, body = _raw_request(url, (
        f'GET /v1/model HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer '
        f'{SERVICE_TOKEN}\r\nConnection: close\r\n\r\n').encode())
    assert status == expected, (host, head)
    if expected == 400:
      assert b'attacker' not in body and 'attacker' not in head


def test_a_client_that_goes_away_costs_no_decode_and_no_device(service):
  """Behind a request of eight 49-Mpx photos (seconds on the one decode
  thread), three clients send a photo each and hang up: their photos are
  never decoded nor scored (whether the service had read them or not), and
  the big request is answered."""
  url, _ = service
  big = [(f'big{i}.png', image_trees.pixel_bomb(7000, 7000))
         for i in range(8)]
  before = _statistics(url)
  with concurrent.futures.ThreadPoolExecutor(1) as pool:
    answer = pool.submit(_client(url).predict, big)
    time.sleep(1.0)  # the big request is decoding
    for seed in range(3):
      body, content_type = client_lib.multipart([('gone.jpg', _photo(seed))])
      head = _post_head(url, len(body), content_type)
      with socket.create_connection(_address(url)) as sock:
        sock.sendall(head + body)  # and hangs up at once
    status, body = answer.result(timeout=120)
  assert status == 200, body
  after = _statistics(url)
  assert after['photos_decoded'] - before.get('photos_decoded', 0) == 8
  assert after['photos'] - before['photos'] == 8  # on the device
  assert after['requests_abandoned'] - before.get(
      'requests_abandoned', 0) == 3
  assert after['body_bytes_held'] == 0


def test_the_pixel_budget_is_per_request(service):
  url, _ = service
  too_many = [(f'{i}.png', image_trees.pixel_bomb(7000, 7000))
              for i in range(9)]  # 441 Mpx, each photo allowed alone
  status, body = _client(url).predict(too_many)
  assert status == 413 and 'serve.max_request_pixels' in body['error'], body


@pytest.mark.slow  # a service of its own
def test_wrong_tokens_lock_the_client_out(trained_run, tmp_path):
  """After serve.token_failures wrong tokens, even the right one gets 429
  with Retry-After, until the lockout passes; a request without a token
  (the page's first call) does not count."""
  workdir, _ = trained_run
  process, url = client_lib.start_service(
      workdir, ['--config.serve.token_failures=3',
                '--config.serve.token_lockout_s=2'], tmp_path / 'log',
      env={'SKINJAX_SERVE_TOKEN': SERVICE_TOKEN})
  try:
    for _ in range(5):
      assert _client(url, None).model()[0] == 401
    assert _client(url).model()[0] == 200
    wrong = _client(url, SERVICE_TOKEN[::-1])
    assert [wrong.model()[0] for _ in range(4)] == [401, 401, 401, 429]
    status, body = _client(url).model()
    assert status == 429 and 'serve.token_lockout_s' in body['error'], body
    time.sleep(2.1)
    assert _client(url).model()[0] == 200
  finally:
    process.terminate()
    assert process.wait(timeout=60) == 0


def test_turns_go_to_the_request_served_least():
  """One slot; a request of four photos holds it when a request of one
  arrives: the one goes next, not after the other three."""
  async def run():
    slots, order = turns.Turns(1), []

    async def decode(owner):
      async with slots.slot(owner):
        order.append(owner)
        await asyncio.sleep(0.01)

    tasks = [asyncio.create_task(decode('sixteen')) for _ in range(4)]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(decode('one')))
    await asyncio.sleep(0)
    cancelled = asyncio.create_task(decode('gone'))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.gather(*tasks)
    return order, slots

  order, slots = asyncio.run(run())
  assert order == ['sixteen', 'one', 'sixteen', 'sixteen', 'sixteen']
  assert slots._free == 1 and not slots._granted  # pylint: disable=protected-access


def test_the_body_budget_is_shared_and_given_back():
  budget = uploads.BodyBudget(100)
  with budget.account() as first:
    first.add(60)
    with pytest.raises(uploads.Refused, match='max_body_bytes_in_flight'):
      with budget.account() as second:
        second.add(30)
        second.add(20)
    assert budget.held == 60
  assert budget.held == 0


def _kill_thread(thread: threading.Thread) -> None:
  """Raises SystemExit in `thread` at its next Python instruction."""
  done = ctypes.pythonapi.PyThreadState_SetAsyncExc(
      ctypes.c_ulong(thread.ident), ctypes.py_object(SystemExit))
  assert done == 1


def test_a_dead_device_thread_turns_health_and_requests_to_503():
  """The device thread killed mid-batch (an asynchronous SystemExit, as
  from a crashed extension): within a second /healthz answers 503, the
  waiting jobs fail, a new job fails at once, and on_failure is called."""
  running = threading.Event()

  def slow(images):
    running.set()
    while True:  # Python instructions, where the exception lands
      time.sleep(0.01)

  failures = []
  batcher = batching.Batcher({'predict': slow}, 2, 0.0, 1,
                             on_failure=failures.append).start()
  service = scoring.Service(batcher, defaults.get_config(), None, None, {})
  server = uvicorn.Server(uvicorn.Config(
      service_app.create_app(service, None, ['127.0.0.1']), port=0,
      log_level='warning', lifespan='off'))
  listener = access.listen('127.0.0.1', 0)
  url = 'http://127.0.0.1:%d' % listener.getsockname()[1]
  thread = threading.Thread(target=server.run,
                            kwargs={'sockets': [listener]}, daemon=True)
  thread.start()
  try:
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
      time.sleep(0.05)
    assert client_lib.Client(url).healthz() == (200, {'status': 'ok'})
    first = batcher.submit('predict', np.zeros((1, 2)))
    waiting = batcher.submit('predict', np.zeros((2, 2)))
    assert running.wait(10)
    _kill_thread(batcher._thread)  # pylint: disable=protected-access
    killed = time.monotonic()
    with pytest.raises(batching.DeviceFailed):
      waiting[0].result(timeout=1)
    with pytest.raises(batching.DeviceFailed):
      first[0].result(timeout=1)
    status, body = client_lib.Client(url).healthz()
    assert time.monotonic() - killed < 1
    assert status == 503 and 'SystemExit' in body['reason'], body
    with pytest.raises(batching.DeviceFailed):
      batcher.submit('predict', np.zeros((1, 2)))
    deadline = time.monotonic() + 1  # on_failure runs on the dying thread
    while not failures and time.monotonic() < deadline:
      time.sleep(0.01)
    assert failures == ['SystemExit']
  finally:
    server.should_exit = True
    thread.join(30)


def test_statistics_need_the_token(service):
  url, _ = service
  assert _client(url, None).statistics()[0] == 401
  statistics = _statistics(url)
  assert json.dumps(statistics)  # plain JSON
  assert set(statistics['connections']) == {'open', 'closed'}


def _certificate(folder):
  """A self-signed certificate for 127.0.0.1 and its key, made by openssl
  (skips without it)."""
  if not shutil.which('openssl'):
    pytest.skip('openssl is not installed')
  certificate, key = folder / 'cert.pem', folder / 'key.pem'
  subprocess.run(
      ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
       'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj',
       '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
       '-keyout', str(key), '-out', str(certificate)],
      check=True, capture_output=True)
  key.chmod(0o600)
  return certificate, key


@pytest.mark.slow  # a service of its own
def test_https_and_the_request_deadline(trained_run, tmp_path):
  """With a certificate and key the service speaks HTTPS only (a client
  checking against that certificate is answered; plain HTTP is not), and
  a request still decoding at its deadline gets 504 with a message."""
  workdir, _ = trained_run
  certificate, key = _certificate(tmp_path)
  process, url = client_lib.start_service(
      workdir, [f'--config.serve.tls_certificate={certificate}',
                f'--config.serve.tls_key={key}',
                '--config.serve.request_deadline_s=1',
                '--config.serve.decode_threads=1',
                '--config.serve.max_request_pixels=400000000'],
      tmp_path / 'log', env={'SKINJAX_SERVE_TOKEN': SERVICE_TOKEN})
  try:
    assert url.startswith('https://127.0.0.1:')
    secure = client_lib.Client(url, SERVICE_TOKEN, cafile=str(certificate))
    status, body = secure.predict([('a.jpg', _photo(1))])
    assert status == 200, body
    status, body = secure.predict([(f'{i}.png', image_trees.pixel_bomb(
        7000, 7000)) for i in range(6)])
    assert status == 504 and 'serve.request_deadline_s' in body['error']
    with pytest.raises(ssl.SSLCertVerificationError):
      client_lib.Client(url, SERVICE_TOKEN).model()  # not a known authority
    plain = client_lib.Client(url.replace('https', 'http'), SERVICE_TOKEN)
    with pytest.raises((ConnectionError, http.client.HTTPException)):
      plain.model()
    status, statistics = secure.statistics()
    assert statistics['requests_past_deadline'] == 1, statistics
  finally:
    process.terminate()
    assert process.wait(timeout=60) == 0
