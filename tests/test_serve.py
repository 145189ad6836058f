"""skinjax.serve on the 20-step run: the API, hostile requests (each a 4xx
with a message, the service still answering), batching of concurrent
requests, the load test bounded, refusals at start, and the page in
headless Chromium. One service per module, on 127.0.0.1."""

import base64
import concurrent.futures
import http.client
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
from PIL import Image
import pytest
from skimage import data as skimage_data

from helpers import REPO, SERVICE_TOKEN, run_module
import image_trees
from skinjax.data.builders import lesion_drawing
from skinjax.service import access
from skinjax.service import batching
from skinjax.service import client as client_lib

TOKEN = SERVICE_TOKEN


def _client(url, token=TOKEN):
  return client_lib.Client(url, token, timeout=60)


def photo(seed, width=64, height=48):
  return image_trees.encode(image_trees.photo(seed, width, height))


def probabilities(row):
  return dict(row['differential'])


def assert_same_probabilities(row, other):
  """The same classes in the same order, probabilities equal to float32's
  precision (a photo's batch shape changes the order of XLA's sums)."""
  assert [n for n, _ in row['differential']] == [
      n for n, _ in other['differential']]
  np.testing.assert_allclose([p for _, p in row['differential']],
                             [p for _, p in other['differential']],
                             rtol=1e-5)


def test_a_photo_of_a_cat_is_unfamiliar(service):
  """The service raises the flag predict raises (tests/test_unfamiliar.py):
  from the features of the same forward pass, batched like any photo."""
  url, _ = service
  cat = io.BytesIO()
  Image.fromarray(skimage_data.chelsea()).save(cat, format='PNG')
  status, body = _client(url).predict([('chelsea.png', cat.getvalue())])
  assert status == 200, body
  assert body['photos'][0]['unfamiliar'] is True


def test_model_card_and_token(service):
  url, workdir = service
  status, card = _client(url).model()
  assert status == 200
  assert card['classes'] == list(lesion_drawing.CLASS_NAMES)
  step = card['version']['checkpoint_step']
  with open(os.path.join(workdir, 'calibration', f'{step}.json')) as f:
    saved = json.load(f)
  assert card['calibration']['temperature'] == saved['temperature']
  assert card['thresholds']['uncertain_below'] == saved['threshold']
  assert card['thresholds']['unfamiliar_above'] == saved[
      'unfamiliar_threshold'] is not None
  assert card['batching']['batch_shapes'] == [1, 2]
  assert 'not a diagnosis' in card['notice']
  for token in (None, 'wrong' + TOKEN):
    status, body = _client(url, token).model()
    assert status == 401 and 'token' in body['error']
    status, _ = _client(url, token).predict([('a.jpg', photo(0))])
    assert status == 401
  assert _client(url, None).healthz()[0] == 200  # needs no token


def test_differentials_do_not_depend_on_the_batch(service):
  """Rows for three photos in one request (the first twice), as
  `predict --output x.json` writes them; each photo alone scores the same."""
  url, _ = service
  client = _client(url)
  _, card = client.model()
  photos = [('first.jpg', photo(1)), ('second.png', image_trees.encode(
      image_trees.photo(2, 80, 60), 'PNG')), ('again.jpg', photo(1))]
  status, body = client.predict(photos)
  assert status == 200, body
  rows = body['photos']
  assert [r['file'] for r in rows] == ['first.jpg', 'second.png', 'again.jpg']
  threshold = card['thresholds']['uncertain_below']
  for row in rows:
    p = [q for _, q in row['differential']]
    assert sorted(probabilities(row)) == sorted(card['classes'])
    assert p == sorted(p, reverse=True)
    assert abs(sum(p) - 1) < 1e-5
    assert row['uncertain'] == (threshold is None or p[0] < threshold)
  assert_same_probabilities(rows[0], rows[2])  # in a batch of 2, then of 1
  assert all(isinstance(r['unfamiliar'], bool) and r['skin_tone']
             for r in rows)
  assert probabilities(rows[0]) != probabilities(rows[1])
  for row, one in zip(rows, photos):
    status, alone = client.predict([one])
    assert status == 200
    assert_same_probabilities(row, alone['photos'][0])


@pytest.mark.slow  # compiling Grad-CAM takes seconds; the page test uses it
def test_grad_cam_on_demand(service):
  url, _ = service
  status, body = _client(url).predict([('a.jpg', photo(3))], grad_cam=True)
  assert status == 200, body
  overlay = Image.open(io.BytesIO(base64.b64decode(
      body['photos'][0]['grad_cam_png'])))
  assert overlay.format == 'PNG' and min(overlay.size) > 100
  _, plain = _client(url).predict([('a.jpg', photo(3))])
  assert 'grad_cam_png' not in plain['photos'][0]
  assert_same_probabilities(plain['photos'][0], body['photos'][0])


def _chunked_post(url, body, content_type):
  """POST /v1/predict without a Content-Length (chunked), so the limit is
  enforced on the stream."""
  host, port = url.split('//')[1].split(':')
  connection = http.client.HTTPConnection(host, int(port), timeout=60)
  connection.request(
      'POST', '/v1/predict',
      body=(body[i:i + 2**16] for i in range(0, len(body), 2**16)),
      headers={'Content-Type': content_type,
               'Authorization': f'Bearer {TOKEN}'}, encode_chunked=True)
  response = connection.getresponse()
  result = response.status, json.loads(response.read())
  connection.close()
  return result


def test_hostile_requests_are_refused_and_the_service_goes_on(service):
  url, _ = service
  client = _client(url)
  many_body, many_type = client_lib.multipart(
      [(f'{i}.jpg', photo(4)) for i in range(1000)])
  huge_body, huge_type = client_lib.multipart([('big.jpg', bytes(50 * 2**20))])
  good_body, good_type = client_lib.multipart([('a.jpg', photo(5))])
  form = {'Content-Type': good_type}
  cases = {
      'empty body': (lambda: client.request('POST', '/v1/predict', b''),
                     415, 'multipart/form-data'),
      'empty multipart body': (
          lambda: client.request('POST', '/v1/predict', b'', form),
          400, 'no photo'),
      'a non-image': (lambda: client.predict([('notes.jpg', b'not a photo')]),
                      422, 'notes.jpg): not an image'),
      'an empty photo': (lambda: client.predict([('e.jpg', b'')]),
                         422, 'empty file'),
      'a 900 Mpx header': (lambda: client.predict(
          [('bomb.png', image_trees.decompression_bomb())]),
                           422, 'too many pixels'),
      'a 100 Mpx PNG of 100 KB': (lambda: client.predict(
          [('bomb.png', image_trees.pixel_bomb(10_000, 10_000))]),
                                  422, 'dataset.max_image_pixels'),
      'a 50 MB upload': (lambda: client.request(
          'POST', '/v1/predict', huge_body, {'Content-Type': huge_type}),
                         413, 'serve.max_request_bytes'),
      'a 50 MB upload, chunked': (
          lambda: _chunked_post(url, huge_body, huge_type),
          413, 'serve.max_request_bytes'),
      '1,000 photos': (lambda: client.request(
          'POST', '/v1/predict', many_body, {'Content-Type': many_type}),
                       413, 'serve.max_photos_per_request'),
      'no closing boundary': (lambda: client.request(
          'POST', '/v1/predict', good_body[:-40], form),
                              400, 'incomplete'),
      'a part not named photo': (lambda: client.request(
          'POST', '/v1/predict', good_body.replace(b'name="photo"',
                                                   b'name="image"'), form),
                                 400, "named 'photo'"),
      'grad_cam=maybe': (lambda: client.request(
          'POST', '/v1/predict?grad_cam=maybe', good_body, form),
                         400, 'grad_cam'),
      'GET /v1/predict': (lambda: client.request('GET', '/v1/predict'),
                          405, 'Method Not Allowed'),
      'an unknown path': (lambda: client.request('GET', '/v2/predict'),
                          404, 'Not Found'),
  }
  for name, (send, status, message) in cases.items():
    got, body = send()
    assert (got, message in body.get('error', '')) == (status, True), (
        name, got, body)
    assert _client(url).healthz()[0] == 200, name
  status, body = client.predict([('a.jpg', photo(5))])
  assert status == 200, body


def test_concurrent_requests_share_batches(service):
  url, _ = service
  photos = [[(f'{i}.jpg', photo(10 + i))] for i in range(4)]
  alone = [_client(url).predict(p)[1]['photos'][0] for p in photos]
  _, before = _client(url).statistics()
  start = threading.Barrier(8)

  def send(i):
    client = _client(url)
    start.wait()
    return client.predict(photos[i % 4])

  with concurrent.futures.ThreadPoolExecutor(8) as pool:
    answers = list(pool.map(send, range(8)))
  _, after = _client(url).statistics()
  for i, (status, body) in enumerate(answers):
    assert status == 200, body
    assert_same_probabilities(body['photos'][0], alone[i % 4])
  assert after['photos'] - before['photos'] == 8
  pairs = after['photos_per_batch'].get('2', 0) - before[
      'photos_per_batch'].get('2', 0)
  assert pairs >= 1, (before, after)  # no batch is ever larger than 2
  assert set(after['photos_per_batch']) <= {'1', '2'}


def test_load_test_bounded(service, tmp_path):
  url, _ = service
  output = tmp_path / 'load.json'
  result = subprocess.run(
      [sys.executable, 'experiments/serving/load_test.py', '--url', url,
       '--clients', '4', '--seconds', '2', '--max_requests', '60',
       '--output', str(output)], cwd=REPO, capture_output=True, text=True,
      timeout=120, env=dict(os.environ, SKINJAX_SERVE_TOKEN=TOKEN))
  assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
  figures = json.loads(output.read_text())
  assert figures['failed'] == 0 and 0 < figures['requests'] <= 60
  assert figures['latency_ms']['p50'] <= figures['latency_ms']['p99']
  assert sum(int(size) * count for size, count in
             figures['photos_per_batch'].items()) == figures['requests']


@pytest.mark.slow
def test_live_latency_bounded(service, tmp_path):
  """experiments/live_camera/latency.py for 3 s: frames scored, one at a
  time, and its figures consistent."""
  url, _ = service
  output = tmp_path / 'live.json'
  result = subprocess.run(
      [sys.executable, 'experiments/live_camera/latency.py', '--url', url,
       '--seconds', '3', '--size', '320x240', '--output', str(output)],
      cwd=REPO, capture_output=True, text=True, timeout=180,
      env=dict(os.environ, SKINJAX_SERVE_TOKEN=TOKEN))
  assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
  figures = json.loads(output.read_text())
  frames = figures['frames']
  assert frames['scored'] > 0 and figures['in_flight_max'] == 1
  assert frames['answered'] == frames['scored'] + frames['refused']
  # At most one in flight at the start and at the end.
  assert abs(frames['sent'] - frames['answered'] - frames['failed']) <= 1
  assert figures['latency_ms']['frames'] == frames['scored']
  assert 0 < figures['latency_ms']['p50'] <= figures['latency_ms']['p95']
  assert figures['model']['dataset'] == 'synthetic_lesions/small'
  assert 'p50' in result.stdout


def test_access_needs_a_token_off_loopback(tmp_path):
  token_file = tmp_path / 'token'
  token_file.write_text(TOKEN + '\n')
  token_file.chmod(0o600)
  assert access.is_loopback('127.0.0.1') and access.is_loopback('::1')
  assert access.is_loopback('localhost')
  assert not access.is_loopback('0.0.0.0')
  assert access.required_token('127.0.0.1', None, {}) is None
  assert access.required_token('0.0.0.0', str(token_file), {}) == TOKEN
  assert access.required_token(
      '0.0.0.0', None, {access.TOKEN_VARIABLE: TOKEN}) == TOKEN
  refusals = {
      ('0.0.0.0', None): 'reachable from other machines',
      ('127.0.0.1', 'short'): 'at least 16 characters',
      ('127.0.0.1', 'group-readable'): 'chmod 600',
      ('127.0.0.1', 'missing'): 'No such file',
  }
  (tmp_path / 'short').write_text('secret')
  (tmp_path / 'short').chmod(0o600)
  (tmp_path / 'group-readable').write_text(TOKEN)
  (tmp_path / 'group-readable').chmod(0o640)
  for (host, name), message in refusals.items():
    with pytest.raises(access.AccessError, match=message):
      access.required_token(host, name and str(tmp_path / name), {})
  assert access.bearer_matches(f'Bearer {TOKEN}', TOKEN)
  assert access.bearer_matches(f'bearer  {TOKEN}', TOKEN)
  for header in (None, TOKEN, f'Basic {TOKEN}', f'Bearer {TOKEN[:-1]}'):
    assert not access.bearer_matches(header, TOKEN)


@pytest.mark.slow
def test_refuses_to_start(trained_run, tmp_path):
  """Without a token off loopback, with a token file others can read, with
  half a TLS pair or a file that is not one, or with a serve knob that
  cannot work: one line, before any model work."""
  workdir, _ = trained_run
  token_file = tmp_path / 'token'
  token_file.write_text(TOKEN)
  token_file.chmod(0o644)
  env = {k: v for k, v in os.environ.items() if k != access.TOKEN_VARIABLE}
  cases = {
      ('--host', '0.0.0.0'): '--host=0.0.0.0 is reachable from other',
      ('--token_file', str(token_file)): 'chmod 600',
      ('--config.serve.max_batch_size=0',):
          'config.serve.max_batch_size=0: must be >= 1',
      (f'--config.serve.tls_certificate={token_file}',):
          'give both',
      (f'--config.serve.tls_certificate={token_file}',
       f'--config.serve.tls_key={token_file}'): 'not a PEM certificate',
      ('--config.serve.request_deadline_s=0',):
          'config.serve.request_deadline_s=0.0: must be > 0',
  }
  with concurrent.futures.ThreadPoolExecutor(len(cases)) as pool:
    results = pool.map(lambda args: run_module(
        'skinjax.serve', ['--workdir', str(workdir), '--port', '0', *args],
        env=env, timeout=300), cases)
    for (args, message), result in zip(cases.items(), results):
      last = result.stderr.strip().splitlines()[-1]
      assert result.returncode == 1, (args, result.stderr[-2000:])
      assert last.startswith('error: ') and message in last, (args, last)
      assert 'checkpoint step' not in result.stdout  # nothing restored


def test_batcher_gathers_jobs_of_a_kind_within_the_limits():
  """The device worker on plain numpy functions: batches never mix kinds
  nor exceed max_batch_size, are padded to the compiled shapes, a request
  larger than a batch is split, an error fails only its batch, and a
  cancelled request is skipped."""
  shapes_seen = []

  def double(x):
    shapes_seen.append(len(x))
    return x * 2

  def fail(x):
    raise ValueError(f'failed on {len(x)}')

  batcher = batching.Batcher({'double': double, 'fail': fail},
                             max_batch_size=3, max_wait_s=0.2,
                             device_count=1)
  assert batcher.shapes == (1, 2, 4)
  cancelled = batcher.submit('double', np.arange(1))[0]
  assert cancelled.cancel()
  futures = [batcher.submit('double', np.arange(5) + 10)]  # split 3 + 2
  futures += [batcher.submit('fail', np.arange(1))]
  futures += [batcher.submit('double', np.arange(1) + 100) for _ in range(3)]
  batcher.start()
  assert np.concatenate([f.result() for f in futures[0]]).tolist() == [
      20, 22, 24, 26, 28]
  with pytest.raises(ValueError, match='failed on 1'):
    futures[1][0].result()
  assert [f[0].result().tolist() for f in futures[2:]] == [[200]] * 3
  batcher.stop()
  # 3 photos (padded to 4); the other 2 (the failing job is of another
  # kind); the failure alone; the three single photos together (padded).
  assert shapes_seen == [4, 2, 4]
  assert batcher.statistics()['photos_per_batch'] == {2: 1, 3: 2}


def _fake_camera():
  """experiments/live_camera/fake_camera.py, which the benchmark uses too: its
  fake camera and its headless Chromium."""
  spec = importlib.util.spec_from_file_location('fake_camera', os.path.join(
      REPO, 'experiments', 'live_camera', 'fake_camera.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _chromium(profile, arguments=()):
  """Debian's headless Chromium (fake_camera.chromium), with `arguments`
  too; skips when it or chromedriver is not installed, fails then if
  $SKINJAX_REQUIRE_BROWSER is set (CI)."""
  missing = [name for name in ('chromium', 'chromedriver')
             if not shutil.which(name)]
  if importlib.util.find_spec('selenium') is None:
    missing.append('the selenium package (pip install -e .[dev])')
  if missing:
    reason = (f'no headless browser: {", ".join(missing)} missing (apt-get '
              'install chromium chromium-driver)')
    if os.environ.get('SKINJAX_REQUIRE_BROWSER'):
      pytest.fail(reason + '; SKINJAX_REQUIRE_BROWSER is set')
    pytest.skip(reason)
  return _fake_camera().chromium(profile, arguments)


def assert_explained(card, row, threshold):
  """The card explains each of the row's flags and its skin tone in a
  sentence of its own: an element each, capitalised, ending in a full
  stop."""
  from selenium.webdriver.common.by import By
  explained = {e.get_attribute('data-explains'): e.text for e in
               card.find_elements(By.CSS_SELECTOR, '.explanations > li')}
  expected = {'skin-tone'} | {k for k in ('uncertain', 'unfamiliar')
                              if row[k]}
  if row.get('quality', {}).get('flagged'):  # the service's quality gate
    expected.add('quality')
  assert set(explained) == expected, explained
  for text in explained.values():
    assert text[0].isupper() and text.endswith('.'), explained
  assert explained['skin-tone'] == (
      'Skin tone (ITA estimate): ' + row['skin_tone'].replace('_', ' ') + '.')
  if row['uncertain'] and threshold is not None:
    assert f'{100 * threshold:.1f}%.' in explained['uncertain']


@pytest.mark.slow
def test_page_in_headless_chromium(service, tmp_path, monkeypatch):
  """A photo picked and one dropped on the page are scored; the page shows
  the API's differential, the flags, the notice and a Grad-CAM overlay,
  with no browser console error (a CSP violation would be one)."""
  monkeypatch.setenv('SE_OFFLINE', 'true')  # Selenium Manager: no downloads
  driver = _chromium(tmp_path / 'profile')
  from selenium.webdriver.common.by import By
  from selenium.webdriver.support import ui
  url, _ = service
  wait = ui.WebDriverWait(driver, 120)
  try:
    driver.get(f'{url}/#token={TOKEN}')
    assert 'token=' not in driver.current_url  # taken out of the address
    wait.until(lambda d: d.find_element(By.ID, 'model-card').text.startswith(
        'Model '))
    assert 'does not replace' in driver.find_element(By.ID, 'notice').text
    picked = tmp_path / 'picked lesion.jpg'
    picked.write_bytes(photo(20, 300, 200))
    driver.find_element(By.ID, 'pick').send_keys(str(picked))
    dropped = photo(21, 200, 300)
    cat = io.BytesIO()
    Image.fromarray(skimage_data.chelsea()).save(cat, format='JPEG')
    cat = cat.getvalue()
    driver.execute_script(
        """const data = new DataTransfer();
        for (const [name, encoded] of [['dropped.jpg', arguments[0]],
                                       ['chelsea.jpg', arguments[1]]]) {
          const bytes = Uint8Array.from(atob(encoded), c => c.charCodeAt(0));
          data.items.add(new File([bytes], name, {type: 'image/jpeg'}));
        }
        document.getElementById('drop').dispatchEvent(
            new DragEvent('drop', {dataTransfer: data, bubbles: true}));""",
        base64.b64encode(dropped).decode(), base64.b64encode(cat).decode())
    wait.until(lambda d: len(d.find_elements(
        By.CSS_SELECTOR, '.card[data-state="scored"]')) == 3)
    threshold = _client(url).model()[1]['thresholds']['uncertain_below']
    expected = {name: _client(url).predict([(name, data)])[1]['photos'][0]
                for name, data in (('picked lesion.jpg', picked.read_bytes()),
                                   ('dropped.jpg', dropped),
                                   ('chelsea.jpg', cat))}
    # scikit-image's cat: the quality gate says so on the page.
    assert 'no_skin' in expected['chelsea.jpg']['quality']['reasons']
    for card in driver.find_elements(By.CSS_SELECTOR, '.card'):
      row = expected[card.find_element(By.CSS_SELECTOR, '.name').text]
      shown = [(e.find_element(By.CSS_SELECTOR, '.label').text,
                e.find_element(By.CSS_SELECTOR, '.probability').text)
               for e in card.find_elements(By.CSS_SELECTOR,
                                           '.differential li')]
      assert shown == [(name, f'{100 * p:.1f}%')
                       for name, p in row['differential']]
      flags = [f.text for f in card.find_elements(By.CSS_SELECTOR, '.flag')]
      assert ('uncertain' in flags) == row['uncertain']
      assert ('unfamiliar' in flags) == row['unfamiliar']
      assert_explained(card, row, threshold)
      if 'no_skin' in row['quality']['reasons']:
        assert 'no skin in view' in card.find_element(
            By.CSS_SELECTOR, '[data-explains="quality"]').text
      # No broken image before Grad-CAM is asked for.
      assert not card.find_element(By.CSS_SELECTOR, '.overlay').is_displayed()
    card = driver.find_elements(By.CSS_SELECTOR, '.card')[0]
    card.find_element(By.CSS_SELECTOR, '.grad-cam').click()
    overlay = card.find_element(By.CSS_SELECTOR, '.overlay')
    wait.until(lambda d: overlay.is_displayed() and d.execute_script(
        'return arguments[0].complete && arguments[0].naturalWidth', overlay))
    # Live mode where browsers give no camera (not HTTPS, not localhost):
    # the page says so, and why.
    driver.execute_script(
        "Object.defineProperty(window, 'isSecureContext', {value: false});")
    driver.find_element(By.ID, 'live-start').click()
    said = driver.find_element(By.ID, 'live-status').text
    assert 'HTTPS' in said and 'localhost' in said, said
    assert not driver.find_element(By.ID, 'live-view').is_displayed()
    screenshot = tmp_path / 'page.png'
    driver.save_screenshot(str(screenshot))
    assert min(Image.open(screenshot).size) > 500
    errors = [entry for entry in driver.get_log('browser')
              if entry['level'] == 'SEVERE']
    assert not errors, errors
  finally:
    driver.quit()


def _chromium_filming(tmp_path, monkeypatch, sharp_s, blurred_s):
  """_chromium whose fake camera films a synthetic lesion, 320x240 at 10
  frames a second: `sharp_s` seconds sharp, then `blurred_s` blurred, in a
  loop."""
  fake_camera = _fake_camera()
  video = tmp_path / 'camera.y4m'
  fake_camera.write_y4m(video, fake_camera.frames(
      fake_camera.skin_photo(320, 240, synthetic=True), fps=10,
      sharp_s=sharp_s, blurred_s=blurred_s))
  monkeypatch.setenv('SE_OFFLINE', 'true')
  return _chromium(tmp_path / 'profile', [
      *fake_camera.CHROMIUM_ARGUMENTS,
      f'--use-file-for-fake-video-capture={video}'])


@pytest.mark.slow
def test_live_camera_in_headless_chromium(service, tmp_path, monkeypatch):
  """Live mode on a fake camera playing sharp, then blurred frames of a
  skin photo, in a loop: sharp frames are scored, their differential
  updated in place; Keep makes a card of the frame with its differential
  and Grad-CAM; never more than one frame in flight; Stop stops sending;
  blurred frames are refused with the quality gate's message, the last
  differential kept and marked as from an earlier frame (the gate is the
  service's: `quality` in each row). About 30 s."""
  driver = _chromium_filming(tmp_path, monkeypatch, sharp_s=4, blurred_s=2)
  from selenium.webdriver.common.by import By
  from selenium.webdriver.support import ui
  url, _ = service
  wait = ui.WebDriverWait(driver, 20)
  counters = lambda: driver.execute_script(
      'return {page: window.skinjaxLive, sent: window.liveRequests};')
  # Read at once: the live differential is replaced with every frame.
  shown = lambda element: driver.execute_script(
      'return Array.from(arguments[0].querySelectorAll(".differential li"),'
      ' e => e.dataset.class);', element)
  try:
    driver.get(f'{url}/#token={TOKEN}')
    wait.until(lambda d: d.find_element(By.ID, 'model-card').text.startswith(
        'Model '))
    driver.execute_script(_fake_camera().COUNT_REQUESTS_JS)
    assert not driver.find_element(By.ID, 'live-view').is_displayed()
    assert not driver.find_element(By.ID, 'live-keep').is_displayed()
    start = driver.find_element(By.ID, 'live-start')
    start.click()
    result = driver.find_element(By.ID, 'live-result')
    wait.until(lambda d: counters()['page']['scored'] >= 3)
    assert result.get_attribute('data-state') == 'scored'
    assert sorted(shown(result)) == sorted(lesion_drawing.CLASS_NAMES)
    assert not driver.find_elements(By.CSS_SELECTOR, '.card')  # in place
    assert result.find_element(By.CSS_SELECTOR, '.live-age').text == (
        'The current frame:')

    driver.find_element(By.ID, 'live-keep').click()
    kept = wait.until(lambda d: d.find_elements(
        By.CSS_SELECTOR, '.card[data-source="live"][data-state="scored"]'))[0]
    assert kept.find_element(By.CSS_SELECTOR, '.name').text.startswith(
        'live frame ')
    assert len(kept.find_elements(By.CSS_SELECTOR, '.differential li')) == (
        len(lesion_drawing.CLASS_NAMES))
    overlay = kept.find_element(By.CSS_SELECTOR, '.overlay')
    ui.WebDriverWait(driver, 60).until(
        lambda d: overlay.is_displayed() and d.execute_script(
            'return arguments[0].complete && arguments[0].naturalWidth',
            overlay))

    seen = counters()
    assert seen['sent']['max'] == 1 and seen['page']['maxInFlight'] == 1
    assert seen['sent']['total'] == seen['page']['sent']
    assert seen['page']['sent'] - seen['page']['answered'] <= 1
    assert seen['page']['failed'] == 0
    start.click()  # Stop
    wait.until(lambda d: counters()['page']['inFlight'] == 0)
    stopped = counters()['page']['sent']
    assert start.text == 'Live'
    assert driver.find_element(By.ID, 'live-status').text == (
        'Live mode stopped.')
    threading.Event().wait(1.0)
    assert counters()['page']['sent'] == stopped
    errors = [entry for entry in driver.get_log('browser')
              if entry['level'] == 'SEVERE']
    assert not errors, errors

    start.click()  # again: the blurred frames are refused, with the reason
    wait.until(lambda d: result.get_attribute('data-state') == 'refused')
    status = driver.find_element(By.ID, 'live-status').text
    assert status.startswith('Frame not scored: ') and (
        'hold still' in status), status
    assert 'blurred' in counters()['page']['lastReasons']
    assert result.find_element(By.CSS_SELECTOR, '.live-age').text.startswith(
        'From an earlier frame')
    # The last good differential, still shown.
    assert sorted(shown(result)) == sorted(lesion_drawing.CLASS_NAMES)
    wait.until(lambda d: result.get_attribute('data-state') == 'scored')
    seen = counters()
    assert seen['sent']['max'] == 1 and seen['page']['refused'] > 0
  finally:
    driver.quit()


# Run in the page: every other answer to a live frame becomes the quality
# gate's refusal, as the service sends it with usable_only=true.
_REFUSE_EVERY_OTHER_FRAME_JS = """
const realFetch = window.fetch;
let frames = 0;
window.fetch = async function (resource, options) {
  const response = await realFetch.call(this, resource, options);
  if (!String(resource).includes('usable_only=true') || ++frames % 2) {
    return response;
  }
  const body = await response.json();
  Object.assign(body.photos[0], {differential: [], uncertain: null,
      unfamiliar: null, quality: {flagged: true,
      reasons: ['blurred', 'too_dark'], message: 'hold still; too dark'}});
  return new Response(JSON.stringify(body),
                      {headers: {'content-type': 'application/json'}});
};
"""


@pytest.mark.slow
def test_live_mode_shows_the_gates_refusals(service, tmp_path, monkeypatch):
  """The page against the quality gate's contract, whatever the service's
  gate does: a refused frame's message is shown and the last differential
  stays, greyed and marked as from an earlier frame; the next frame scored
  replaces it. About 15 s."""
  driver = _chromium_filming(tmp_path, monkeypatch, sharp_s=2, blurred_s=0)
  from selenium.webdriver.common.by import By
  from selenium.webdriver.support import ui
  url, _ = service
  wait = ui.WebDriverWait(driver, 20)
  shown = lambda: driver.execute_script("""
      const result = document.getElementById('live-result');
      return {state: result.dataset.state,
              age: result.querySelector('.live-age').textContent,
              status: document.getElementById('live-status').textContent,
              classes: result.querySelectorAll('.differential li').length,
              opacity: getComputedStyle(result.querySelector(
                  '.differential')).opacity,
              live: window.skinjaxLive};""")
  try:
    driver.get(f'{url}/#token={TOKEN}')
    wait.until(lambda d: d.find_element(By.ID, 'model-card').text.startswith(
        'Model '))
    driver.execute_script(_REFUSE_EVERY_OTHER_FRAME_JS)
    driver.find_element(By.ID, 'live-start').click()
    refused = wait.until(lambda d: (lambda s: s['state'] == 'refused' and (
        s['live']['scored'] > 0) and s)(shown()))
    assert refused['status'] == 'Frame not scored: hold still; too dark.'
    assert refused['age'].startswith('From an earlier frame (')
    assert refused['age'].endswith(
        's ago); the latest was not scored: hold still; too dark.')
    assert refused['classes'] == 6 and float(refused['opacity']) < 1
    assert refused['live']['lastReasons'] == ['blurred', 'too_dark']
    scored = wait.until(lambda d: (lambda s: s['state'] == 'scored' and s)(
        shown()))
    assert scored['age'] == 'The current frame:' and scored['classes'] == 6
    assert float(scored['opacity']) == 1
    live = shown()['live']
    assert live['refused'] > 0 and live['scored'] > 0 and (
        live['maxInFlight'] == 1 and live['failed'] == 0)
  finally:
    driver.quit()


@pytest.mark.slow
def test_scores_as_predict_does(service, tmp_path):
  """The same photo file through `predict --output x.json` and the API:
  the same rows."""
  url, workdir = service
  path = tmp_path / 'lesion.jpg'
  path.write_bytes(photo(30, 500, 400))
  output = tmp_path / 'predicted.json'
  result = run_module('skinjax.predict', [
      '--workdir', str(workdir), str(path), '--top_k', '6',
      '--output', str(output)])
  assert result.returncode == 0, result.stderr[-2000:]
  (predicted,) = json.loads(output.read_text())
  status, body = _client(url).predict([('lesion.jpg', path.read_bytes())])
  assert status == 200
  (served,) = body['photos']
  for key in ('uncertain', 'unfamiliar', 'skin_tone'):
    assert served[key] == predicted[key], key
  assert abs(served['ita'] - predicted['ita']) < 1e-6
  assert_same_probabilities(served, predicted)
