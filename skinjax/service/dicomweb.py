"""DICOM on the service: instances sent to POST /v1/predict beside photos,
and DICOMweb STOW-RS (POST /dicomweb/studies), so that a device or a PACS
router can push what it stores.

An instance is checked from its header (scoring.check_pixels counts its
frames against the request's pixel budget with pixel_count) and decoded
frame by frame in the request's decoding turns, within its deadline; each
frame becomes an Upload of lossless PNG bytes named `name#frameN` that
scoring.score scores exactly as it scores a photo. Its rows carry the
instance's UIDs and frame ('dicom'), and with `?report=dicom` its DICOM
Structured Report comes back base64 (with `grad_cam=true` too, each frame's
overlay as a Secondary Capture). Refusals name the part and why, never
a value of the instance: values may be patient data.
"""

import base64
import dataclasses
import itertools

import anyio

from skinjax.data.prepare import decode
from skinjax.dicom import captures
from skinjax.dicom import loading
from skinjax.dicom import reading
from skinjax.dicom import reports
from skinjax.service import scoring
from skinjax.service import uploads

_OWNERS = itertools.count(1 << 40)  # apart from scoring's request ids


def pixel_count(data: bytes) -> int:
  """A photo's or a DICOM instance's pixels (all frames), from its header."""
  if reading.looks_like_dicom(data):
    return reading.pixel_count(data)
  return decode.pixel_count(data)


def wants_report(request) -> bool:
  """?report=dicom: a Structured Report of each DICOM instance."""
  value = request.query_params.get('report', 'none').lower()
  if value not in ('dicom', 'none'):
    raise uploads.Refused(400, f'report={value!r}: use dicom or none')
  return value == 'dicom'


@dataclasses.dataclass
class Expanded:
  """A request's uploads with every DICOM instance made into its frames."""
  photos: list  # [uploads.Upload] to score, in order
  frames: dict  # {index in photos: (index of the upload, frame number)}
  instances: dict  # {index of the upload: reading.Instance}
  failures: dict  # {index of the upload: reason}


def _is_dicom(upload: uploads.Upload) -> bool:
  return reading.looks_like_dicom(upload.data) or reading.is_dicom_name(
      upload.filename)


def _decode(data: bytes, recipe, name: str) -> tuple:
  instance = reading.parse(data, recipe.max_image_pixels)
  return instance, [(loading.label(name, instance, n),
                     reading.frame_photo(instance, n))
                    for n in range(1, instance.frames + 1)]


async def expand(service: scoring.Service, sent,
                 dicom_only: bool = False) -> Expanded:
  """The uploads `sent`, each DICOM instance among them decoded in this
  request's turns into one Upload per frame (its own bytes let go), or its
  reason for refusal recorded; photos pass as they are, unless
  `dicom_only`."""
  owner = next(_OWNERS)
  expanded = Expanded([], {}, {}, {})
  for index, upload in enumerate(sent):
    if not _is_dicom(upload):
      if dicom_only:
        expanded.failures[index] = 'not a DICOM file (no DICM preamble)'
      else:
        expanded.photos.append(upload)
      continue
    try:
      async with service.decoding.slot(owner):
        instance, frames = await anyio.to_thread.run_sync(
            _decode, upload.data, service.recipe, upload.filename)
    except reading.DicomRefused as e:
      expanded.failures[index] = str(e)
      continue
    upload.release()
    expanded.instances[index] = instance
    for number, (name, png) in enumerate(frames, 1):
      expanded.frames[len(expanded.photos)] = (index, number)
      expanded.photos.append(uploads.Upload(name, png))
  return expanded


def _uids(instance: reading.Instance) -> dict:
  """The instance's UIDs, without a frame."""
  uids = instance.reference(1)
  del uids['frame']
  return uids


def _model(service: scoring.Service) -> dict:
  return reports.algorithm(service.config.model.name, service.checkpoint)


def _encoded(dataset) -> str:
  """A DICOM dataset as base64 of its Part 10 file."""
  return base64.b64encode(reports.to_bytes(dataset)).decode('ascii')


def _report(instance, rows, model: dict) -> str:
  """The base64 Structured Report of `rows`, [(frame, row)]."""
  return _encoded(reports.structured_report(instance, rows, model))


def _captures(instance, rows) -> list:
  """[{'frame', 'sc_base64'}]: the Grad-CAM overlay of each frame in
  `rows`, [(frame, row)], as a Secondary Capture in the source's study."""
  return [{'frame': n, 'sc_base64': _encoded(captures.grad_cam_capture(
      instance, n, base64.b64decode(row['grad_cam_png'])))}
          for n, row in rows if row.get('grad_cam_png')]


def _rows_by_instance(expanded: Expanded, rows) -> dict:
  """{index of the upload: [(frame, row)]} of its DICOM instances, each row
  given its 'dicom' reference on the way."""
  grouped = {}
  for index, (upload, number) in expanded.frames.items():
    rows[index]['dicom'] = expanded.instances[upload].reference(number)
    grouped.setdefault(upload, []).append((number, rows[index]))
  return grouped


async def predict(service: scoring.Service, sent, grad_cam: bool,
                  report: bool, **score_options) -> dict:
  """POST /v1/predict's answer for photos and DICOM instances; a refused
  instance refuses the request (422), as a refused photo does.
  `score_options` go to scoring.score as they are (usable_only)."""
  expanded = await expand(service, sent)
  if expanded.failures:
    index, reason = next(iter(expanded.failures.items()))
    raise uploads.Refused(422, f'photo {index + 1} ({sent[index].filename}):'
                          f' {reason}')
  answer = await scoring.score(service, expanded.photos, grad_cam,
                               **score_options)
  grouped = _rows_by_instance(expanded, answer['photos'])
  if report:
    model = _model(service)

    def reports_of():  # in a thread: encoding is the event loop's time
      return [{'photo': index + 1, **_uids(instance),
               'sr_base64': _report(instance, grouped[index], model),
               **({'grad_cam_captures': _captures(instance, grouped[index])}
                  if grad_cam else {})}
              for index, instance in expanded.instances.items()]
    answer['dicom_reports'] = await anyio.to_thread.run_sync(reports_of)
  return answer


async def store(service: scoring.Service, sent, report: bool) -> dict:
  """POST /dicomweb/studies' answer: each instance by its UIDs, scored
  (its frames' rows, and its report if asked) or failed (why)."""
  expanded = await expand(service, sent, dicom_only=True)
  rows = []
  if expanded.photos:
    rows = (await scoring.score(service, expanded.photos, False))['photos']
  grouped = _rows_by_instance(expanded, rows)
  model = _model(service) if report else None
  answer = await anyio.to_thread.run_sync(
      _entries, sent, expanded, grouped, model)
  return {'instances': answer,
          'uncertain_below': service.checkpoint.calibration.threshold,
          'notice': scoring.NOTICE}


def _entries(sent, expanded: Expanded, grouped: dict, model) -> list:
  """STOW's answer for each part: its UIDs, and its frames' rows (and
  report, when `model` is given) or why it failed."""
  answer = []
  for index, upload in enumerate(sent):
    if index in expanded.failures:
      answer.append({'part': index + 1, **reading.identity(upload.data),
                     'status': 'failed',
                     'reason': expanded.failures[index]})
      continue
    instance = expanded.instances[index]
    frames = grouped[index]
    entry = {'part': index + 1, **_uids(instance), 'status': 'scored',
             'frames': [row for _, row in frames]}
    if model is not None:
      entry['sr_base64'] = _report(instance, frames, model)
    answer.append(entry)
  return answer


def store_status(answer: dict) -> int:
  """200 when every instance was scored, 202 when some were, 409 when none
  (DICOMweb STOW-RS's statuses)."""
  failed = sum(e['status'] == 'failed' for e in answer['instances'])
  if not failed:
    return 200
  return 409 if failed == len(answer['instances']) else 202
