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


def hostile_collection(root):
  """root/Hives and root/Eczema: good photos among every kind of hostile
  file. Returns (how many plain photos must be kept, then {file name: the
  start of the reason it is refused} for the files preparation's listing
  refuses and for those decoding refuses; predict meets only these). One
  more photo is inside png_and_zip.zip, a zip that is also a PNG."""
  write_class_tree(root, {'': {'Hives': 6, 'Eczema': 6}})
  hives = os.path.join(root, 'Hives')
  ramp = np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(48, 64)
  photo_zip = io.BytesIO()
  with zipfile.ZipFile(photo_zip, 'w') as archive:
    archive.writestr('inside.jpg', encode(photo(70)))
  png = encode(photo(71), 'PNG')
  good = {
      'float.tif': encode(Image.fromarray(ramp), 'TIFF'),
      'sixteen_bit.png': encode(Image.fromarray(
          (ramp.T * 65535).astype(np.uint16)), 'PNG'),
      'twelve_bit.png': encode(Image.fromarray(
          (ramp[::-1] * 4095).astype(np.uint16)), 'PNG'),
      'polyglot.jpg': encode(photo(72)) + b'PK\x05\x06' + bytes(18),
      'png_then_zip.png': png + photo_zip.getvalue(),
  }
  for name, data in good.items():
    write(os.path.join(hives, name), data)
  Image.new('RGB', (7000, 7000), (150, 90, 80)).save(
      os.path.join(hives, 'large.jpg'))  # 49 Mpx, under the default limit
  write(os.path.join(hives, 'png_and_zip.zip'), png + photo_zip.getvalue())
  listing_refuses = {
      'zeros.bmp': 'zip bomb: declares 256.0 MiB from',
      'claims.jpg': '300.0 MiB: larger than any photo',
      'many.zip': 'zip bomb: its members declare',
      'broken.zip': 'broken zip archive',
      'loop': 'link loop',
  }
  zip_bomb(os.path.join(hives, 'bomb.zip'), 'zeros.bmp', 256 * 2**20)
  lying_zip(os.path.join(hives, 'lying.zip'), 'claims.jpg', encode(photo(73)),
            300 * 2**20)
  with zipfile.ZipFile(os.path.join(hives, 'many.zip'), 'w',
                       zipfile.ZIP_DEFLATED) as archive:
    for i in range(64):
      archive.writestr(f'{i}.bmp', bytes(2**20))
  write(os.path.join(hives, 'broken.zip'), b'PK\x03\x04junk')
  os.symlink(root, os.path.join(hives, 'loop'))
  good_jpeg = encode(photo(74, 400, 300))  # cut in its pixels, not its header
  decoding_refuses = {
      'pixels_100mpx.png': 'too many pixels: 10000x10000',
      'pixels_900mpx.png': 'too many pixels',
      'truncated.jpg': 'corrupt or truncated',
      'portrait.jpg': 'not an image in a supported format',
      'poster.jpg': 'not an image in a supported format',
      'empty.jpg': 'empty file',
      'huge.jpg': '1.0 GiB: larger than any photo',
  }
  for name, data in {
      'pixels_100mpx.png': pixel_bomb(10_000, 10_000),
      'pixels_900mpx.png': decompression_bomb(),
      'truncated.jpg': good_jpeg[:len(good_jpeg) // 2],
      'portrait.jpg': encode(photo(75), 'PPM'),
      'poster.jpg': encode(photo(76), 'EPS'),
      'empty.jpg': b''}.items():
    write(os.path.join(hives, name), data)
  with open(os.path.join(hives, 'huge.jpg'), 'wb') as f:
    f.truncate(2**30)  # sparse: no disk
  return 12 + len(good) + 1, listing_refuses, decoding_refuses
