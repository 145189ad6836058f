"""Reading a collection's files in bounded memory: zip members checked for
size and compression ratio from the archive's directory before they are
read, and no read larger than any photo."""

import os
import zipfile

import pytest

import image_trees
from skinjax.data.prepare import files


def _reasons(listing):
  return {os.path.basename(s['file']): s['reason'] for s in listing.skipped}


def test_zip_members_that_inflate_or_claim_too_much_are_refused_unread(
    tmp_path):
  photo = image_trees.encode(image_trees.photo(1))
  image_trees.zip_bomb(str(tmp_path / 'bombs.zip'), 'zeros.bmp', 8 * 2**20)
  with zipfile.ZipFile(tmp_path / 'bombs.zip', 'a') as archive:
    archive.writestr('photo.jpg', photo)
  image_trees.lying_zip(str(tmp_path / 'lying.zip'), 'huge.jpg', photo,
                        300 * 2**20)
  listing = files.list_files(str(tmp_path))
  assert [os.path.basename(str(f)) for f in listing.files] == ['photo.jpg']
  reasons = _reasons(listing)
  assert reasons['zeros.bmp'].startswith(
      'zip bomb: declares 8.0 MiB from 8.') and 'more than 100 times' in (
          reasons['zeros.bmp'])
  assert reasons['huge.jpg'] == ('300.0 MiB: larger than any photo (limit '
                                 '256.0 MiB); not read')


def test_an_archive_of_many_small_bombs_is_refused_whole(tmp_path):
  """Each member below the size where ratios are checked, all together a
  bomb: the archive's total is checked too."""
  path = tmp_path / 'many.zip'
  with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as archive:
    for i in range(40):
      archive.writestr(f'{i}.bmp', bytes(files.RATIO_CHECKED_ABOVE))
  listing = files.list_files(str(tmp_path))
  assert not listing.files
  assert _reasons(listing)['many.zip'].startswith(
      'zip bomb: its members declare 40.0 MiB from an archive of')
  with pytest.raises(files.CollectionError, match=f'^{path}: zip bomb'):
    files.list_files(str(path))  # the archive as the whole collection


def test_a_member_that_inflates_past_its_declared_size_is_cut_there(tmp_path):
  """The directory says 100 bytes, the data inflates to 8 MiB: reading
  stops at 100 bytes and fails its checksum, never holding the rest."""
  path = tmp_path / 'liar.zip'
  image_trees.lying_zip(str(path), 'zeros.bmp', bytes(8 * 2**20), 100,
                        zipfile.ZIP_DEFLATED)
  [member] = files.list_files(str(tmp_path)).files
  with pytest.raises(zipfile.BadZipFile, match='CRC'):
    member.read()


def test_plain_files_larger_than_any_photo_are_refused_unread(tmp_path):
  path = tmp_path / 'huge.jpg'
  with open(path, 'wb') as f:
    f.truncate(2**30)  # sparse: a gibibyte that takes no disk
  with pytest.raises(files.FileTooLarge, match=r'^1\.0 GiB: larger than any '):
    files.FileRef(str(path)).read()
