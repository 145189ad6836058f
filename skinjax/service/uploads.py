"""Photos uploaded as multipart/form-data, one part named 'photo' each, or
DICOM instances as multipart/related (DICOMweb STOW-RS), one
application/dicom part each, read into memory (never to disk) within the
service's limits, by one parser: a body larger than `max_bytes` is
refused from its Content-Length before it is read, or as soon as its stream
passes the limit, and the part after `max_photos` ends the parse. Each photo's bytes are held once, written into one buffer
as they arrive, and every byte held counts against the process's
BodyBudget until the request ends."""

import contextlib
import dataclasses
import io

from python_multipart import multipart
from python_multipart import exceptions

FIELD = 'photo'
DICOM = b'application/dicom'


class Refused(Exception):
  """A request the service will not score: its HTTP status and a one-line
  message saying why."""

  def __init__(self, status: int, message: str):
    super().__init__(message)
    self.status = status
    self.message = message


@dataclasses.dataclass
class Upload:
  filename: str  # as the client named it; only ever echoed back
  data: bytes

  def release(self) -> None:
    """Lets the bytes go now, whatever still refers to this Upload (a
    finished coroutine's frame in a traceback, say): the cyclic garbage
    collector, which would free them otherwise, counts objects, not
    bytes, and may not run for many requests."""
    self.data = b''


class BodyBudget:
  """Bytes of request bodies held at a time, across requests (the event
  loop's thread only)."""

  def __init__(self, limit: int):
    self.limit = limit
    self.held = 0

  @contextlib.contextmanager
  def account(self):
    """A _Holding of one request's bytes, given back when it exits."""
    holding = _Holding(self)
    try:
      yield holding
    finally:
      self.held -= holding.bytes


class _Holding:

  def __init__(self, budget: BodyBudget):
    self._budget = budget
    self.bytes = 0

  def add(self, count: int) -> None:
    budget = self._budget
    if budget.held + count > budget.limit:
      raise Refused(503, 'busy: the uploads in progress fill '
                    f'serve.max_body_bytes_in_flight = {budget.limit:,} '
                    'bytes; retry in a few seconds')
    budget.held += count
    self.bytes += count


class _Parts:
  """python-multipart's streaming parser, keeping each part's bytes."""

  def __init__(self, boundary: bytes, max_photos: int, noun: str):
    self._max_photos = max_photos
    self._noun = noun
    self.parts = []  # [headers dict, io.BytesIO of its data]
    self.complete = False
    self._header = [b'', b'']
    self.parser = multipart.MultipartParser(boundary, {
        'on_part_begin': self._begin,
        'on_header_field': lambda d, s, e: self._add(0, d[s:e]),
        'on_header_value': lambda d, s, e: self._add(1, d[s:e]),
        'on_header_end': self._header_end,
        'on_part_data': lambda d, s, e: self.parts[-1][1].write(d[s:e]),
        'on_end': self._end,
    })

  def _begin(self):
    if len(self.parts) == self._max_photos:
      raise Refused(413, f'more than {self._max_photos} {self._noun}s in one '
                    'request (serve.max_photos_per_request)')
    self.parts.append([{}, io.BytesIO()])

  def _add(self, which: int, data: bytes):
    self._header[which] += data

  def _header_end(self):
    field, value = self._header
    self.parts[-1][0][field.decode('latin-1').strip().lower()] = value
    self._header = [b'', b'']

  def _end(self):
    self.complete = True


def _upload(index: int, headers: dict, data: io.BytesIO) -> Upload:
  disposition, options = multipart.parse_options_header(
      headers.get('content-disposition', b''))
  name = options.get(b'name', b'').decode('utf-8', 'replace')
  if disposition != b'form-data' or name != FIELD:
    raise Refused(400, f'part {index + 1}: expected a form-data part named '
                  f'{FIELD!r}, got {name!r}; send each photo as a part '
                  f'named {FIELD!r}')
  filename = options.get(b'filename', b'').decode('utf-8', 'replace')
  # getvalue() hands over the buffer's own bytes, not a copy.
  return Upload(filename or f'photo {index + 1}', data.getvalue())


def _instance(index: int, headers: dict, data: io.BytesIO) -> Upload:
  kind, _ = multipart.parse_options_header(
      headers.get('content-type', DICOM))
  if kind != DICOM:
    raise Refused(415, f'part {index + 1}: Content-Type '
                  f"{kind.decode('latin-1')!r}, not {DICOM.decode()!r}")
  return Upload(f'instance {index + 1}', data.getvalue())


async def read_photos(request, holding: _Holding, *, max_bytes: int,
                      max_photos: int) -> list:
  """The request's photos as Uploads, their bytes counted in `holding`;
  raises Refused (4xx; 503 when the budget is full) for a body that is too
  large, not multipart, malformed, holds no photo or too many."""
  kind, options = multipart.parse_options_header(
      request.headers.get('content-type'))
  if kind != b'multipart/form-data' or not options.get(b'boundary'):
    raise Refused(415, 'send the photos as multipart/form-data, one part '
                  f'named {FIELD!r} per photo')
  return await _read_body(request, holding, options[b'boundary'], max_bytes,
                          max_photos, 'photo', _upload)


async def read_instances(request, holding: _Holding, *, max_bytes: int,
                         max_instances: int) -> list:
  """A STOW-RS request's DICOM instances as Uploads ('instance N'), within
  the same limits as read_photos, which refuses them likewise."""
  kind, options = multipart.parse_options_header(
      request.headers.get('content-type'))
  if (kind != b'multipart/related' or not options.get(b'boundary')
      or options.get(b'type', DICOM) != DICOM):
    raise Refused(415, 'send the instances as multipart/related; '
                  'type="application/dicom", one part per instance')
  return await _read_body(request, holding, options[b'boundary'], max_bytes,
                          max_instances, 'instance', _instance)


async def _read_body(request, holding: _Holding, boundary: bytes,
                     max_bytes: int, max_parts: int, noun: str,
                     make_upload) -> list:
  """The parts of a multipart body, each made an Upload by
  `make_upload(index, headers, data)`."""
  length = request.headers.get('content-length')
  if length is not None and not length.isdigit():
    raise Refused(400, f'Content-Length {length!r} is not a number')
  if length is not None and int(length) > max_bytes:
    raise Refused(413, f'request body of {int(length):,} bytes, more than '
                  f'serve.max_request_bytes = {max_bytes:,}')
  try:
    parts = _Parts(boundary, max_parts, noun)
  except exceptions.FormParserError as e:
    raise Refused(400, f'multipart: {e}') from None
  try:
    return await _read(request, parts, holding, max_bytes, noun, make_upload)
  finally:
    # The parser's callbacks refer back to `parts`: a cycle that would hold
    # every part's buffer until the cyclic collector runs.
    for _, data in parts.parts:
      data.close()
    parts.parts.clear()


async def _read(request, parts: _Parts, holding: _Holding, max_bytes: int,
                noun: str, make_upload) -> list:
  received = 0
  async for chunk in request.stream():
    received += len(chunk)
    if received > max_bytes:
      raise Refused(413, f'request body of more than {max_bytes:,} bytes '
                    '(serve.max_request_bytes)')
    holding.add(len(chunk))
    try:
      parts.parser.write(chunk)
    except exceptions.FormParserError as e:
      raise Refused(400, f'malformed multipart body: {e}') from None
  if not parts.parts:
    raise Refused(400, f'no {noun} in the request: send each {noun} as a '
                  'multipart part' + (f' named {FIELD!r}' if noun == 'photo'
                                      else ''))
  if not parts.complete:
    raise Refused(400, 'incomplete multipart body: the closing boundary is '
                  'missing')
  return [make_upload(i, headers, data)
          for i, (headers, data) in enumerate(parts.parts)]
