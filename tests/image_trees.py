"""Small photo collections written by the tests, with the awkward files that
real collections have: corrupt, truncated, empty, non-image, grey, CMYK,
RGBA, 16-bit, EXIF-rotated and duplicated."""

import io
import os
import struct
import zipfile
import zlib

import numpy as np
from PIL import Image


def photo(seed, width=40, height=30):
  """A smooth random RGB image; different seeds give different pixels."""
  coarse = np.random.default_rng(seed).integers(0, 255, (4, 4, 3), np.uint8)
  return Image.fromarray(coarse).resize((width, height),
                                        Image.Resampling.BICUBIC)


def encode(image, fmt='JPEG', **kwargs):
  buffer = io.BytesIO()
  image.save(buffer, format=fmt, **kwargs)
  return buffer.getvalue()


def write(path, data):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'wb') as f:
    f.write(data)


def awkward_files(seed):
  """{file name: bytes} of files a preparation must handle or skip.

  Usable: grey, cmyk, rgba, 16-bit, exif-rotated (stored 40x30, shown 30x40).
  Unusable: corrupt, truncated, empty, not an image.
  """
  grey16 = np.linspace(0, 65535, 40 * 30).reshape(30, 40).astype(np.uint16)
  exif = Image.Exif()
  exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
  good = encode(photo(seed))
  return {
      'grey.png': encode(photo(seed + 1).convert('L'), 'PNG'),
      'cmyk.jpg': encode(photo(seed + 2).convert('CMYK')),
      'rgba.png': encode(photo(seed + 3).convert('RGBA'), 'PNG'),
      'sixteen_bit.png': encode(Image.fromarray(grey16), 'PNG'),  # mode I;16
      'rotated.jpg': encode(photo(seed + 4), exif=exif),
      'corrupt.jpg': np.random.default_rng(seed).bytes(500),
      'truncated.jpg': good[:len(good) // 2],
      'empty.jpg': b'',
      'notes.txt': b'not an image',
  }


USABLE_AWKWARD = 5
UNUSABLE_AWKWARD = 4


def write_class_tree(root, splits, seed=0):
  """root/<split>/<class>/img_<i>.jpg from {split: {class: count}}.

  Returns the number of images written per (split, class).
  """
  for split, classes in splits.items():
    for name, count in classes.items():
      for i in range(count):
        seed += 1
        folder = os.path.join(root, split, name) if split else os.path.join(
            root, name)
        write(os.path.join(folder, f'img_{i}.jpg'), encode(photo(seed)))
  return seed


def _grey_png(width, height, bit_depth, compressed_rows):
  def chunk(kind, body):
    return (struct.pack('>I', len(body)) + kind + body +
            struct.pack('>I', zlib.crc32(kind + body)))
  header = struct.pack('>IIBBBBB', width, height, bit_depth, 0, 0, 0, 0)
  return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) +
          chunk(b'IDAT', compressed_rows) + chunk(b'IEND', b''))


def decompression_bomb(side=30_000):
  """A PNG header claiming side x side pixels (far beyond PIL's limit) with
  a few bytes of data: opening it must be refused, not attempted."""
  return _grey_png(side, side, 1, zlib.compress(b'\0' * 64))


def pixel_bomb(width, height):
  """A valid 8-bit grey PNG of width x height black pixels, hundreds of
  times smaller than its pixels (100 Mpx: about 100 KB), written a row at a
  time so that the test never holds them."""
  compressor = zlib.compressobj(9)
  row = bytes(width + 1)  # filter byte, then the pixels
  data = b''.join(compressor.compress(row) for _ in range(height))
  return _grey_png(width, height, 8, data + compressor.flush())


def zip_bomb(path, member, inflated_bytes):
  """A zip at `path` whose `member` inflates to `inflated_bytes` of zeros
  (about 1,000 times its compressed size), streamed, never held whole."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  block = bytes(2**20)
  with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as archive:
    with archive.open(member, 'w', force_zip64=True) as f:
      for start in range(0, inflated_bytes, len(block)):
        f.write(block[:inflated_bytes - start])


def lying_zip(path, member, data, declared_bytes,
              compression=zipfile.ZIP_STORED):
  """A zip whose directory declares `declared_bytes` uncompressed for a
  member that holds `data`: a header that lies."""
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, 'w', compression) as archive:
    archive.writestr(member, data)
  raw = bytearray(buffer.getvalue())
  directory = raw.rindex(b'PK\x01\x02')  # the member's central record
  raw[directory + 24:directory + 28] = struct.pack('<I', declared_bytes)
  write(path, bytes(raw))
