"""The HTTP service (Starlette, an ASGI app uvicorn runs): a JSON API and the
clinicians' page, both in one process that holds nothing on disk.

  POST /v1/predict[?grad_cam=true]  photos (multipart, parts named 'photo')
       -> the ranked differential of each, as `predict --output x.json`
          writes it, with its Grad-CAM overlay (PNG, base64) if asked
  GET  /v1/model    classes, version, calibration, thresholds, limits
  GET  /healthz     liveness, and the batches run so far
  GET  /            the page (page/), which calls the API

When the service has a token, /v1/* requires `Authorization: Bearer TOKEN`;
the page and /healthz hold nothing private and need none.
"""

import asyncio
import base64
import dataclasses
import importlib.metadata
import importlib.resources
from typing import Any

import anyio
import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.responses import Response
from starlette.routing import Route

from skinjax.data.prepare import decode
from skinjax.inference import preparation
from skinjax.inference import skin_tone
from skinjax.service import access
from skinjax.service import device
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
  """What the routes share: the device worker and how its outputs are read."""
  batcher: Any  # batching.Batcher, with 'predict' and 'grad_cam' functions
  config: Any
  recipe: preparation.Recipe  # how an uploaded photo becomes the input
  checkpoint: Any  # restore.Checkpoint: classes, calibration, unfamiliarity
  card: dict  # GET /v1/model
  decoding: anyio.CapacityLimiter  # photos decoded (overlays drawn) at once


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
          'max_image_pixels': config.dataset.max_image_pixels},
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


async def _model_inputs(service: Service, photos) -> tuple:
  """(the photos as the model sees them, stacked; their skin tones)."""
  async def one(index, photo):
    try:
      return await anyio.to_thread.run_sync(
          device.prepare_photo, photo.data, service.recipe,
          skin_tone.region_for(service.config.dataset.name),
          limiter=service.decoding)
    except decode.BadImageError as e:
      raise uploads.Refused(422, f'photo {index + 1} ({photo.filename}): '
                            f'{e}') from None
  prepared = await asyncio.gather(*(one(i, p) for i, p in enumerate(photos)))
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
  for row, image, cam in zip(rows, images, maps):
    name, p = row['differential'][0]
    png = await anyio.to_thread.run_sync(
        device.overlay_png, image, cam, f'{name} ({p:.2f})',
        limiter=service.decoding)
    row['grad_cam_png'] = base64.b64encode(png).decode('ascii')


def _routes(service: Service, token) -> list:
  serve = service.config.serve

  async def predict(request):
    grad_cam = _wants_grad_cam(request)
    photos = await uploads.read_photos(
        request, max_bytes=serve.max_request_bytes,
        max_photos=serve.max_photos_per_request)
    images, tones = await _model_inputs(service, photos)
    result = await _results(service.batcher, 'predict', images)
    checkpoint = service.checkpoint
    rows = checkpoint.differentials(result, service.card['top_k'],
                                    skin_tones=tones)
    for row, photo in zip(rows, photos):
      row['file'] = photo.filename
    if grad_cam:
      top = checkpoint.probabilities(result['logits']).argmax(axis=-1)
      await _add_grad_cam(service, rows, images, top.astype(np.int32))
    return JSONResponse({
        'photos': rows,
        'uncertain_below': service.checkpoint.calibration.threshold,
        'notice': NOTICE})

  async def model(request):
    del request
    return JSONResponse(service.card)

  async def healthz(request):
    del request
    return JSONResponse({'status': 'ok', **service.batcher.statistics()})

  def guarded(endpoint):
    if token is None:
      return endpoint

    async def checked(request):
      if not access.bearer_matches(request.headers.get('authorization'),
                                   token):
        return _error(401, 'this service needs its token: send '
                      '"Authorization: Bearer TOKEN"',
                      {'www-authenticate': 'Bearer'})
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
           Route('/healthz', healthz, methods=['GET'])] +
          [Route(path, page_file, methods=['GET']) for path in files])


async def _refused(request, error):
  del request
  return _error(error.status, error.message)


async def _http_error(request, error):
  del request
  return _error(error.status_code, error.detail, error.headers)


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


def create_app(service: Service, token) -> Any:
  """The ASGI app; `token` (None: none) guards /v1/*."""
  app = Starlette(routes=_routes(service, token), exception_handlers={
      uploads.Refused: _refused, HTTPException: _http_error,
      Exception: _server_error})
  return _SecurityHeaders(app)
