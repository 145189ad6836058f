"""A predict request's work once its photos have arrived: bounded in pixels,
decoded in turns with other requests' photos, scored by the device thread,
and all of it dropped when its client goes away or its deadline passes
(photos not yet decoded are never decoded, jobs not yet on the device never
reach it; counted in Service.counts)."""

import asyncio
import base64
import collections
import dataclasses
import itertools
from typing import Any

import anyio
import numpy as np

from skinjax.data.prepare import decode
from skinjax.inference import preparation
from skinjax.inference import quality
from skinjax.inference import skin_tone
from skinjax.service import device
from skinjax.service import turns
from skinjax.service import uploads

NOTICE = ('Decision support for a clinician, not a diagnosis: a ranked '
          'differential over the classes this model was trained on, with '
          'probabilities calibrated on its validation photos.')



@dataclasses.dataclass
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
  # Set from config.serve: photos decoded (overlays drawn) at once, in
  # turns across requests; request bodies held; requests being scored.
  decoding: turns.Turns = dataclasses.field(init=False)
  bodies: uploads.BodyBudget = dataclasses.field(init=False)
  being_scored: asyncio.Semaphore = dataclasses.field(init=False)
  # The quality gate; by default the checkpoint's (quality_gate).
  gate: quality.Gate | None = None

  def __post_init__(self):
    serve = self.config.serve
    if self.gate is None and self.checkpoint is not None:
      self.gate = self.checkpoint.quality_gate(self.config)
    self.decoding = turns.Turns(serve.decode_threads)
    self.bodies = uploads.BodyBudget(serve.max_body_bytes_in_flight)
    self.being_scored = asyncio.Semaphore(serve.max_concurrent_requests)


async def results(batcher, kind: str, *inputs):
  """The device worker's outputs for these photos (an array, or a dict of
  arrays), awaited."""
  chunks = await asyncio.gather(*(asyncio.wrap_future(f)
                                  for f in batcher.submit(kind, *inputs)))
  if isinstance(chunks[0], dict):
    return {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
  return np.concatenate(chunks)


_REQUEST_IDS = itertools.count()
# A request that held this many bytes ends with a garbage collection.
COLLECT_AFTER_BYTES = 8 * 2**20


def check_pixels(photos, max_pixels: int, count=decode.pixel_count) -> None:
  """Refuses (413) a request whose photos hold more pixels in all than
  `max_pixels`, from their headers (`count(bytes)`), before any is
  decoded."""
  total = sum(count(photo.data) for photo in photos)
  if total > max_pixels:
    raise uploads.Refused(413, f'{len(photos)} photos of {total / 1e6:.0f} '
                          f'Mpx in all, more than serve.max_request_pixels = '
                          f'{max_pixels / 1e6:g} Mpx; send fewer or smaller '
                          'photos per request')


async def model_inputs(service: Service, photos) -> tuple:
  """(the photos as the model sees them, stacked; their skin tones; the
  quality gate's verdicts),
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
            device.prepare_photo, photo.data, service.recipe, region,
            service.gate)
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
  images, tones, qualities = zip(*(task.result() for task in tasks))
  return np.stack(images), list(tones), list(qualities)


async def add_grad_cam(service: Service, rows, images, top) -> None:
  """Each row's Grad-CAM overlay of its top class, as base64 PNG."""
  maps = await results(service.batcher, 'grad_cam', images, top)
  owner = next(_REQUEST_IDS)
  for row, image, cam in zip(rows, images, maps):
    name, p = row['differential'][0]
    async with service.decoding.slot(owner):
      png = await anyio.to_thread.run_sync(
          device.overlay_png, image, cam, f'{name} ({p:.2f})')
    row['grad_cam_png'] = base64.b64encode(png).decode('ascii')


def _unscored(tone: dict, verdict: dict) -> dict:
  """The row of a photo the quality gate refused and usable_only skipped:
  no differential, its flags not measured."""
  return {'differential': [], 'uncertain': None, 'unfamiliar': None,
          'quality': verdict, 'skin_tone': tone['group'], 'ita': tone['ita']}


async def score(service: Service, photos, grad_cam: bool,
                usable_only: bool = False) -> dict:
  """The response to a predict request whose photos have arrived; with
  `usable_only`, photos the quality gate flags are not scored (a live
  camera's frames: only usable ones are worth the device's time)."""
  async with service.being_scored:
    images, tones, qualities = await model_inputs(service, photos)
    filenames = [photo.filename for photo in photos]
    for photo in photos:
      photo.release()  # the uploaded bytes are not needed any more
    keep = [i for i, verdict in enumerate(qualities)
            if not (usable_only and verdict['flagged'])]
    service.counts['photos_refused_by_quality_gate'] += (
        len(photos) - len(keep))
    rows = [_unscored(tone, verdict) for tone, verdict in zip(tones,
                                                              qualities)]
    checkpoint = service.checkpoint
    if keep:
      images = images[keep]
      result = await results(service.batcher, 'predict', images)
      scored = checkpoint.differentials(
          result, service.card['top_k'], skin_tones=[tones[i] for i in keep],
          qualities=[qualities[i] for i in keep])
      for i, row in zip(keep, scored):
        rows[i] = row
      if grad_cam:
        top = checkpoint.probabilities(result['logits']).argmax(axis=-1)
        await add_grad_cam(service, scored, images, top.astype(np.int32))
    for row, filename in zip(rows, filenames):
      row['file'] = filename
  return {'photos': rows,
          'uncertain_below': checkpoint.calibration.threshold,
          'notice': NOTICE}


async def _client_gone(request) -> None:
  """Returns when the client has closed its connection."""
  while (await request.receive())['type'] != 'http.disconnect':
    pass


async def within_deadline(service: Service, request, work):
  """`work`'s result; None when the client goes away first (the work is
  cancelled); Refused (504) when the deadline passes first (cancelled)."""
  seconds = service.config.serve.request_deadline_s
  work = asyncio.ensure_future(work)
  gone = asyncio.ensure_future(_client_gone(request))
  done, _ = await asyncio.wait({work, gone}, timeout=seconds,
                               return_when=asyncio.FIRST_COMPLETED)
  if work in done:
    gone.cancel()
    return work.result()
  work.cancel()
  if gone in done:
    service.counts['requests_abandoned'] += 1
    return None
  gone.cancel()
  service.counts['requests_past_deadline'] += 1
  raise uploads.Refused(504, f'not answered within serve.request_deadline_s '
                        f'= {seconds:g} s of its upload: the service is busy;'
                        ' retry later or send fewer photos')
