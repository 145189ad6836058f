"""The HTTP service (Starlette, an ASGI app uvicorn runs): a JSON API and the
clinicians' page, both in one process that holds nothing on disk.

  POST /v1/predict[?grad_cam=true][&usable_only=true][&report=dicom]
                    photos or DICOM files
       (multipart, parts named 'photo') -> the ranked differential of each
          (of each frame), as `predict --output x.json` writes it, with its
          Grad-CAM overlay (PNG, base64) and each DICOM instance's
          Structured Report (base64) if asked; with usable_only, a photo
          the quality gate flags is not scored (its differential is [])
  POST /dicomweb/studies[?report=dicom]  DICOMweb STOW-RS: instances as
       multipart/related; type="application/dicom" -> each instance by its
       UIDs, its frames' rows or why it failed (dicomweb.py)
  GET  /v1/model    classes, version, calibration, thresholds, limits
  GET  /v1/statistics  batches run, work dropped, connections closed
  GET  /healthz     200 while the device thread lives and keeps up, else 503
  GET  /            the page (page/), which calls the API

When the service has a token, /v1/* and /dicomweb/* require
`Authorization: Bearer TOKEN`; the page and /healthz hold nothing private
and need none. Requests whose
Host header is not one of the allowed names get 400 (DNS rebinding).

A predict request's work, once its photos have arrived, is scoring's: its
deadline, its photos' turns, and what is dropped when its client goes away.
"""

import gc
import importlib.metadata
import importlib.resources
import math
import time
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.responses import Response
from starlette.routing import Route

from skinjax.inference import preparation
from skinjax.service import access
from skinjax.service import batching
from skinjax.service import dicomweb
from skinjax.service import scoring
from skinjax.service import uploads

# The page is plain files served from memory; they load nothing from
# elsewhere, so it works offline.
_PAGE_FILES = {'/': ('index.html', 'text/html; charset=utf-8'),
               '/page.js': ('page.js', 'text/javascript; charset=utf-8'),
               '/page.css': ('page.css', 'text/css; charset=utf-8')}
_SECURITY_HEADERS = [
    (b'content-security-policy',
     b"default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
     b"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    (b'x-content-type-options', b'nosniff'),
    (b'referrer-policy', b'no-referrer'),
    # Predictions are health data: no cache anywhere keeps them.
    (b'cache-control', b'no-store'),
]


def model_card(config, checkpoint, shapes) -> dict:
  """GET /v1/model: what a client needs to read the differentials."""
  calibration = checkpoint.calibration
  try:
    version = importlib.metadata.version('skinjax')
  except importlib.metadata.PackageNotFoundError:
    version = 'unknown'
  return {
      'model': config.model.name,
      'dataset': config.dataset.name,
      'classes': list(checkpoint.class_names),
      'version': {'skinjax': version, 'checkpoint_step': checkpoint.step,
                  'weights': calibration.weights,
                  'params_digest': calibration.params_digest},
      'image_size': preparation.Recipe.from_config(config).image_size,
      'tta': config.evaluation.tta,
      'calibration': {'temperature': calibration.temperature,
                      'max_risk': calibration.max_risk,
                      'fitted_on': calibration.fitted_on},
      'thresholds': {'uncertain_below': calibration.threshold,
                     'unfamiliar_score': calibration.unfamiliar_score,
                     'unfamiliar_above': calibration.unfamiliar_threshold,
                     'quality': _gate_thresholds(checkpoint.quality_gate(
                         config))},
      'top_k': min(config.serve.top_k, len(checkpoint.class_names)),
      'limits': {
          'max_photos_per_request': config.serve.max_photos_per_request,
          'max_request_bytes': config.serve.max_request_bytes,
          'max_request_pixels': config.serve.max_request_pixels,
          'max_image_pixels': config.dataset.max_image_pixels,
          'request_deadline_s': config.serve.request_deadline_s},
      'batching': {'max_batch_size': config.serve.max_batch_size,
                   'max_wait_ms': config.serve.max_wait_ms,
                   'batch_shapes': list(shapes)},
      'notice': scoring.NOTICE,
  }


def _gate_thresholds(gate) -> dict:
  """The quality gate's thresholds (None: that check is not measured)."""
  model = gate.appearance_model
  return {'sharpness_below': gate.min_sharpness,
          'dark_share_above': gate.max_dark_share,
          'bright_end_below': gate.min_bright_end,
          'bright_share_above': gate.max_bright_share,
          'appearance_distance_above': model and model['threshold']}


def _error(status: int, message: str, headers=None) -> JSONResponse:
  return JSONResponse({'error': message}, status, headers=headers)


def _query_flag(request, name: str) -> bool:
  value = request.query_params.get(name, 'false').lower()
  if value not in ('true', 'false', '1', '0'):
    raise uploads.Refused(400, f'{name}={value!r}: use true or false')
  return value in ('true', '1')


def _routes(service: scoring.Service, token) -> list:
  serve = service.config.serve

  async def answered(request, read, work, status_of=lambda answer: 200):
    """The answer to a request whose body `read(request, holding)` parses
    into uploads and `work(uploads)` scores, within the request's limits
    and deadline; 499 when its client has gone."""
    with service.bodies.account() as holding:
      try:
        sent = await read(request, holding)
      except ClientDisconnect:
        service.counts['requests_abandoned'] += 1
        raise
      try:
        scoring.check_pixels(sent, serve.max_request_pixels,
                             count=dicomweb.pixel_count)
        answer = await scoring.within_deadline(service, request, work(sent))
        # None: the client has gone; nobody reads the answer.
        return Response(status_code=499) if answer is None else (
            JSONResponse(answer, status_of(answer)))
      finally:
        for upload in sent:
          upload.release()
        if holding.bytes >= scoring.COLLECT_AFTER_BYTES:
          # PIL's and the parser's reference cycles can hold an upload's
          # bytes until the cyclic collector runs, which counts objects,
          # not bytes; server.serve froze the objects of the start, so
          # this pass reads only what requests made.
          gc.collect()

  async def predict(request):
    grad_cam = _query_flag(request, 'grad_cam')
    usable_only = _query_flag(request, 'usable_only')
    report = dicomweb.wants_report(request)
    return await answered(
        request, lambda r, holding: uploads.read_photos(
            r, holding, max_bytes=serve.max_request_bytes,
            max_photos=serve.max_photos_per_request),
        lambda sent: dicomweb.predict(service, sent, grad_cam, report,
                                      usable_only=usable_only))

  async def stow(request):
    report = dicomweb.wants_report(request)
    return await answered(
        request, lambda r, holding: uploads.read_instances(
            r, holding, max_bytes=serve.max_request_bytes,
            max_instances=serve.max_photos_per_request),
        lambda sent: dicomweb.store(service, sent, report),
        dicomweb.store_status)

  async def model(request):
    del request
    return JSONResponse(service.card)

  async def statistics(request):
    del request
    return JSONResponse({
        **service.batcher.statistics(), **dict(service.counts),
        'body_bytes_held': service.bodies.held,
        'connections': (service.connections.statistics()
                        if service.connections else None)})

  async def healthz(request):
    del request
    problem = service.batcher.health(serve.device_stall_s)
    if problem:
      return JSONResponse({'status': 'unavailable', 'reason': problem}, 503)
    return JSONResponse({'status': 'ok'})

  attempts = access.FailedAttempts(failures=serve.token_failures,
                                   window=serve.token_lockout_s,
                                   lockout=serve.token_lockout_s)

  def guarded(endpoint):
    if token is None:
      return endpoint

    async def checked(request):
      client = request.client.host if request.client else None
      wait = attempts.locked(client, time.monotonic())
      if wait:
        return _error(429, f'too many wrong tokens from {client}: try again '
                      f'in {math.ceil(wait)} s (serve.token_failures, '
                      'serve.token_lockout_s)',
                      {'retry-after': str(math.ceil(wait))})
      given = request.headers.get('authorization')
      if not access.bearer_matches(given, token):
        if given is not None:  # the page asks without one before its form
          attempts.failed(client, time.monotonic())
        return _error(401, 'this service needs its token: send '
                      '"Authorization: Bearer TOKEN"',
                      {'www-authenticate': 'Bearer'})
      attempts.succeeded(client)
      return await endpoint(request)
    return checked

  page = importlib.resources.files('skinjax.service') / 'page'
  files = {path: (page.joinpath(name).read_bytes(), media_type)
           for path, (name, media_type) in _PAGE_FILES.items()}

  async def page_file(request):
    content, media_type = files[request.url.path]
    return Response(content, media_type=media_type)

  return ([Route('/v1/predict', guarded(predict), methods=['POST']),
           Route('/dicomweb/studies', guarded(stow), methods=['POST']),
           Route('/v1/model', guarded(model), methods=['GET']),
           Route('/v1/statistics', guarded(statistics), methods=['GET']),
           Route('/healthz', healthz, methods=['GET'])] +
          [Route(path, page_file, methods=['GET']) for path in files])


async def _refused(request, error):
  del request
  return _error(error.status, error.message)


async def _http_error(request, error):
  del request
  return _error(error.status_code, error.detail, error.headers)


async def _device_failed(request, error):
  del request
  return _error(503, f'the device thread has ended ({error}); the service '
                'is restarting')


async def _client_disconnected(request, error):
  """The client went away while sending: nobody to answer, nothing to
  log."""
  del request, error
  return Response(status_code=499)


async def _server_error(request, error):
  del request  # uvicorn logs the traceback
  return _error(500, f'internal error ({type(error).__name__}); see the '
                "service's log")


class _SecurityHeaders:
  """ASGI middleware adding _SECURITY_HEADERS to every response."""

  def __init__(self, app):
    self._app = app

  async def __call__(self, scope, receive, send):
    async def send_with_headers(message):
      if message['type'] == 'http.response.start':
        message['headers'] = list(message.get('headers', [])) + (
            _SECURITY_HEADERS)
      await send(message)
    await self._app(scope, receive, send_with_headers)


def create_app(service: scoring.Service, token, allowed_hosts) -> Any:
  """The ASGI app; `token` (None: none) guards /v1/*; requests naming
  another Host than `allowed_hosts` get 400."""
  app = Starlette(routes=_routes(service, token), exception_handlers={
      uploads.Refused: _refused, HTTPException: _http_error,
      batching.DeviceFailed: _device_failed,
      ClientDisconnect: _client_disconnected, Exception: _server_error})
  return _SecurityHeaders(TrustedHostMiddleware(
      app, allowed_hosts=list(allowed_hosts), www_redirect=False))
