"""The HTTP service (Starlette, an ASGI app uvicorn runs): a JSON API and the
clinicians' page, both in one process that holds nothing on disk.

  POST /v1/predict[?grad_cam=true]  photos (multipart, parts named 'photo')
       -> the ranked differential of each, as `predict --output x.json`
          writes it, with its Grad-CAM overlay (PNG, base64) if asked
  GET  /v1/model    classes, version, calibration, thresholds, limits
  GET  /v1/statistics  batches run, work dropped, connections closed
  GET  /healthz     200 while the device thread lives and keeps up, else 503
  GET  /            the page (page/), which calls the API

When the service has a token, /v1/* requires `Authorization: Bearer TOKEN`;
the page and /healthz hold nothing private and need none. Requests whose
Host header is not one of the allowed names get 400 (DNS rebinding).

A request is answered within serve.request_deadline_s of its body's
arrival (else 504); its photos are decoded in turn with other requests'
(turns.Turns), and when its client goes away or its deadline passes, its
photos not yet decoded are never decoded and its jobs not yet on the device
never reach it.
"""

import asyncio
import base64
import collections
import dataclasses
import gc
import importlib.metadata
import importlib.resources
import itertools
import math
import time
from typing import Any

import anyio
import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.responses import Response
from starlette.routing import Route

from skinjax.data.prepare import decode
from skinjax.inference import preparation
from skinjax.inference import skin_tone
from skinjax.service import access
from skinjax.service import batching
from skinjax.service import device
from skinjax.service import turns
from skinjax.service import uploads

NOTICE = ('Decision support for a clinician, not a diagnosis: a ranked '
          'differential over the classes this model was trained on, with '
          'probabilities calibrated on its validation photos.')
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


@dataclasses.dataclass(frozen=True)
class Service:
  """What the routes share: the device worker, how its outputs are read,
  and the bounds every request is held to."""
  batcher: Any  # batching.Batcher, with 'predict' and 'grad_cam' functions
  config: Any
  recipe: preparation.Recipe  # how an uploaded photo becomes the input
  checkpoint: Any  # restore.Checkpoint: classes, calibration, unfamiliarity
  card: dict  # GET /v1/model
  connections: Any = None  # connections.Guard, for the statistics
  counts: collections.Counter = dataclasses.field(
      default_factory=collections.Counter)

  def __post_init__(self):
    serve = self.config.serve
    # Photos decoded (overlays drawn) at once, in turn across requests.
    object.__setattr__(self, 'decoding', turns.Turns(serve.decode_threads))
    object.__setattr__(self, 'bodies', uploads.BodyBudget(
        serve.max_body_bytes_in_flight))
    object.__setattr__(self, 'scoring', asyncio.Semaphore(
        serve.max_concurrent_requests))


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
                     'unfamiliar_above': calibration.unfamiliar_threshold},
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
      'notice': NOTICE,
  }


def _error(status: int, message: str, headers=None) -> JSONResponse:
  return JSONResponse({'error': message}, status, headers=headers)


async def _results(batcher, kind: str, *inputs):
  """The device worker's outputs for these photos (an array, or a dict of
  arrays), awaited."""
  chunks = await asyncio.gather(*(asyncio.wrap_future(f)
                                  for f in batcher.submit(kind, *inputs)))
  if isinstance(chunks[0], dict):
    return {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
  return np.concatenate(chunks)


_REQUEST_IDS = itertools.count()
_COLLECT_AFTER_BYTES = 8 * 2**20


def _check_pixels(photos, max_pixels: int) -> None:
  """Refuses (413) a request whose photos hold more pixels in all than
  `max_pixels`, from their headers, before any is decoded."""
  total = sum(decode.pixel_count(photo.data) for photo in photos)
  if total > max_pixels:
    raise uploads.Refused(413, f'{len(photos)} photos of {total / 1e6:.0f} '
                          f'Mpx in all, more than serve.max_request_pixels = '
                          f'{max_pixels / 1e6:g} Mpx; send fewer or smaller '
                          'photos per request')


async def _model_inputs(service: Service, photos) -> tuple:
  """(the photos as the model sees them, stacked; their skin tones),
  decoded in this request's turns; a photo whose turn has not come when
  the request is cancelled is never decoded (counted)."""
  owner = next(_REQUEST_IDS)
  region = skin_tone.region_for(service.config.dataset.name)

  async def one(index, photo):
    started = False
    try:
      async with service.decoding.slot(owner):
        started = True
        prepared = await anyio.to_thread.run_sync(
            device.prepare_photo, photo.data, service.recipe, region)
    except decode.BadImageError as e:
      reason = str(e)  # not the error itself: its frames hold the bytes
    except asyncio.CancelledError:
      if not started:
        service.counts['photos_dropped_before_decoding'] += 1
      raise
    else:
      service.counts['photos_decoded'] += 1
      return prepared
    raise uploads.Refused(422, f'photo {index + 1} ({photo.filename}): '
                          f'{reason}')

  try:
    async with asyncio.TaskGroup() as group:  # one refusal cancels the rest
      tasks = [group.create_task(one(i, p)) for i, p in enumerate(photos)]
  except* uploads.Refused as refusals:
    raise refusals.exceptions[0] from None
  prepared = [task.result() for task in tasks]
  return np.stack([image for image, _ in prepared]), [
      tone for _, tone in prepared]


def _wants_grad_cam(request) -> bool:
  value = request.query_params.get('grad_cam', 'false').lower()
  if value not in ('true', 'false', '1', '0'):
    raise uploads.Refused(400, f'grad_cam={value!r}: use true or false')
  return value in ('true', '1')


async def _add_grad_cam(service: Service, rows, images, top) -> None:
  """Each row's Grad-CAM overlay of its top class, as base64 PNG."""
  maps = await _results(service.batcher, 'grad_cam', images, top)
  owner = next(_REQUEST_IDS)
  for row, image, cam in zip(rows, images, maps):
    name, p = row['differential'][0]
    async with service.decoding.slot(owner):
      png = await anyio.to_thread.run_sync(
          device.overlay_png, image, cam, f'{name} ({p:.2f})')
    row['grad_cam_png'] = base64.b64encode(png).decode('ascii')


async def _score(service: Service, photos, grad_cam: bool) -> dict:
  """The response to a predict request whose photos have arrived."""
  async with service.scoring:
    images, tones = await _model_inputs(service, photos)
    filenames = [photo.filename for photo in photos]
    for photo in photos:
      photo.release()  # the uploaded bytes are not needed any more
    result = await _results(service.batcher, 'predict', images)
    checkpoint = service.checkpoint
    rows = checkpoint.differentials(result, service.card['top_k'],
                                    skin_tones=tones)
    for row, filename in zip(rows, filenames):
      row['file'] = filename
    if grad_cam:
      top = checkpoint.probabilities(result['logits']).argmax(axis=-1)
      await _add_grad_cam(service, rows, images, top.astype(np.int32))
  return {'photos': rows,
          'uncertain_below': checkpoint.calibration.threshold,
          'notice': NOTICE}


async def _client_gone(request) -> None:
  """Returns when the client has closed its connection."""
  while (await request.receive())['type'] != 'http.disconnect':
    pass


async def _within_deadline(service: Service, request, work) -> Response:
  """`work`'s response, unless the client goes away first (the work is
  cancelled; no response) or the deadline passes (cancelled; 504)."""
  seconds = service.config.serve.request_deadline_s
  work = asyncio.ensure_future(work)
  gone = asyncio.ensure_future(_client_gone(request))
  done, _ = await asyncio.wait({work, gone}, timeout=seconds,
                               return_when=asyncio.FIRST_COMPLETED)
  if work in done:
    gone.cancel()
    return JSONResponse(work.result())
  work.cancel()
  if gone in done:
    service.counts['requests_abandoned'] += 1
    return Response(status_code=499)  # nobody reads it
  gone.cancel()
  service.counts['requests_past_deadline'] += 1
  return _error(504, f'not answered within serve.request_deadline_s = '
                f'{seconds:g} s of its upload: the service is busy; retry '
                'later or send fewer photos')


def _routes(service: Service, token) -> list:
  serve = service.config.serve

  async def predict(request):
    grad_cam = _wants_grad_cam(request)
    with service.bodies.account() as holding:
      try:
        photos = await uploads.read_photos(
            request, holding, max_bytes=serve.max_request_bytes,
            max_photos=serve.max_photos_per_request)
      except ClientDisconnect:
        service.counts['requests_abandoned'] += 1
        raise
      try:
        _check_pixels(photos, serve.max_request_pixels)
        return await _within_deadline(service, request,
                                      _score(service, photos, grad_cam))
      finally:
        for photo in photos:
          photo.release()
        if holding.bytes >= _COLLECT_AFTER_BYTES:
          # PIL's and the parser's reference cycles can hold an upload's
          # bytes until the cyclic collector runs, which counts objects,
          # not bytes; server.serve froze the objects of the start, so
          # this pass reads only what requests made.
          gc.collect()

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


def create_app(service: Service, token, allowed_hosts) -> Any:
  """The ASGI app; `token` (None: none) guards /v1/*; requests naming
  another Host than `allowed_hosts` get 400."""
  app = Starlette(routes=_routes(service, token), exception_handlers={
      uploads.Refused: _refused, HTTPException: _http_error,
      batching.DeviceFailed: _device_failed,
      ClientDisconnect: _client_disconnected, Exception: _server_error})
  return _SecurityHeaders(TrustedHostMiddleware(
      app, allowed_hosts=list(allowed_hosts), www_redirect=False))
