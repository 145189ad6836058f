"""A client of skinjax.serve's API on the standard library alone, for scripts
(the load test among them): one kept-alive connection, so one per thread;
and a service started on 127.0.0.1 for them."""

import http.client
import json
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.parse
import uuid

# The line skinjax.serve prints once it answers.
_SERVING = re.compile(r'Serving (https?://\S+?)/ ')


def multipart(photos) -> tuple:
  """(body, Content-Type) of a POST /v1/predict holding `photos`, a list of
  (file name, bytes), each a part named 'photo'."""
  boundary = uuid.uuid4().hex
  parts = []
  for name, data in photos:
    quoted = name.replace('\\', '\\\\').replace('"', '\\"')
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; '
        f'filename="{quoted}"\r\nContent-Type: application/octet-stream'
        '\r\n\r\n'.encode() + data + b'\r\n')
  return (b''.join(parts) + f'--{boundary}--\r\n'.encode(),
          f'multipart/form-data; boundary={boundary}')


def multipart_related(instances) -> tuple:
  """(body, Content-Type) of a DICOMweb STOW-RS request (POST
  /dicomweb/studies) holding `instances`, a list of DICOM files' bytes."""
  boundary = uuid.uuid4().hex
  parts = [f'--{boundary}\r\nContent-Type: application/dicom\r\n\r\n'.encode()
           + data + b'\r\n' for data in instances]
  return (b''.join(parts) + f'--{boundary}--\r\n'.encode(),
          f'multipart/related; type="application/dicom"; boundary={boundary}')


class Client:
  """Requests to the service at `url` (http[s]://host:port), with its token
  when it has one; an https service's certificate is checked against the
  system's authorities or `cafile`. Each method returns (HTTP status, the
  JSON body)."""

  def __init__(self, url: str, token=None, timeout: float = 120,
               cafile=None):
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == 'https':
      self._connection = http.client.HTTPSConnection(
          parsed.hostname, parsed.port or 443, timeout=timeout,
          context=ssl.create_default_context(cafile=cafile))
    else:
      self._connection = http.client.HTTPConnection(
          parsed.hostname, parsed.port or 80, timeout=timeout)
    self._headers = {'Authorization': f'Bearer {token}'} if token else {}

  def request(self, method: str, path: str, body=None, headers=None) -> tuple:
    """Sent again, once, on a new connection when the kept-alive one turns
    out closed (the service closes idle ones after 5 s); every request of
    the API is safe to repeat, as none changes anything."""
    headers = {**self._headers, **(headers or {})}
    for attempt in (1, 2):
      reused = self._connection.sock is not None
      try:
        self._connection.request(method, path, body=body, headers=headers)
        response = self._connection.getresponse()
        data = response.read()
        break
      except (ConnectionError, http.client.HTTPException):
        self._connection.close()  # a new connection for the next request
        if not reused or attempt == 2:
          raise
    if response.getheader('connection', '').lower() == 'close':
      self._connection.close()
    try:
      return response.status, json.loads(data)
    except ValueError:
      return response.status, {'error': data.decode('utf-8', 'replace')}

  def predict(self, photos, grad_cam: bool = False,
              usable_only: bool = False) -> tuple:
    """POST /v1/predict of [(file name, bytes)]; with `usable_only`, photos
    the quality gate flags are not scored."""
    body, content_type = multipart(photos)
    query = [name for name, wanted in (('grad_cam', grad_cam),
                                       ('usable_only', usable_only)) if wanted]
    path = '/v1/predict' + ''.join(
        f'{"?" if i == 0 else "&"}{name}=true' for i, name in enumerate(query))
    return self.request('POST', path, body, {'Content-Type': content_type})

  def stow(self, instances, report: bool = False) -> tuple:
    """POST /dicomweb/studies of DICOM files' bytes (STOW-RS), with each
    instance's Structured Report if `report`."""
    body, content_type = multipart_related(instances)
    path = '/dicomweb/studies' + ('?report=dicom' if report else '')
    return self.request('POST', path, body, {'Content-Type': content_type})

  def model(self) -> tuple:
    return self.request('GET', '/v1/model')

  def healthz(self) -> tuple:
    return self.request('GET', '/healthz')

  def statistics(self) -> tuple:
    return self.request('GET', '/v1/statistics')

  def close(self) -> None:
    self._connection.close()


def start_service(workdir, flags, log_path, env=None, cwd=None,
                  timeout: float = 600) -> tuple:
  """`python -m skinjax.serve --workdir WORKDIR FLAGS` on a free port of
  127.0.0.1, its output in `log_path`: (process, url) once it serves.
  Raises RuntimeError with the end of its log if it exits first."""
  with open(log_path, 'w') as log:
    process = subprocess.Popen(
        [sys.executable, '-m', 'skinjax.serve', '--workdir', str(workdir),
         '--host', '127.0.0.1', '--port', '0', *flags], cwd=cwd,
        env=dict(os.environ, **(env or {})), stdout=log,
        stderr=subprocess.STDOUT)
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    with open(log_path) as f:
      output = f.read()
    if match := _SERVING.search(output):
      return process, match.group(1)
    if process.poll() is not None:
      raise RuntimeError(f'skinjax.serve exited {process.returncode}:\n'
                         + output[-3000:])
    time.sleep(0.1)
  process.kill()
  raise RuntimeError(f'skinjax.serve did not serve within {timeout} s')
