"""Evaluating photos that were never prepared: folder matching and loading."""

import json
import os

import pytest

import image_trees
from skinjax.data.prepare import decode
from skinjax.evaluation import image_dir
from skinjax.inference import photo_files
from skinjax.inference import preparation

_CLASSES = ['acne', 'eczema', 'psoriasis']


def _recipe(max_pixels=decode.MAX_IMAGE_PIXELS):
  return preparation.Recipe(max_short_side=16, jpeg_quality=decode.JPEG_QUALITY,
                            max_image_pixels=max_pixels, image_size=16,
                            crop_fraction=1.0)


def _load_tree(root):
  return image_dir.load_tree(str(root), _CLASSES, _recipe())


def test_folders_match_class_names_ignoring_case_or_through_the_map():
  matched, unmatched = image_dir.match_folders(
      ['ACNE', 'Eczema', 'Psoriasis pictures', 'nails'], _CLASSES,
      {'psoriasis PICTURES': 'Psoriasis'})
  assert matched == {'ACNE': 0, 'Eczema': 1, 'Psoriasis pictures': 2}
  assert unmatched == ['nails']


def test_a_label_map_naming_an_unknown_class_is_refused():
  with pytest.raises(image_dir.PhotoFolderError,
                     match="'warts'.*not a class"):
    image_dir.match_folders(['Warts'], _CLASSES, {'Warts': 'warts'})


def test_label_map_file_errors_name_the_file(tmp_path):
  bad = tmp_path / 'map.json'
  bad.write_text('["acne"]')
  with pytest.raises(image_dir.PhotoFolderError, match=str(bad)):
    image_dir.read_label_map(str(bad))
  bad.write_text('{not json')
  with pytest.raises(image_dir.PhotoFolderError, match=str(bad)):
    image_dir.read_label_map(str(bad))


def test_tree_loads_matched_folders_and_reports_the_rest(tmp_path):
  root = str(tmp_path)
  image_trees.write_class_tree(root, {'': {'Acne': 3, 'eczema': 2,
                                           'unknown': 4}})
  for name, data in image_trees.awkward_files(seed=50).items():
    image_trees.write(os.path.join(root, 'eczema', name), data)
  image_trees.write(os.path.join(root, 'eczema', 'bomb.png'),
                    image_trees.decompression_bomb())
  image_trees.write(os.path.join(root, 'loose.jpg'),
                    image_trees.encode(image_trees.photo(1)))
  examples, report = _load_tree(root)
  labels = sorted(e['label'] for e in examples)
  assert labels == [0] * 3 + [1] * (2 + image_trees.USABLE_AWKWARD)
  assert report['unmatched_folders'] == {'unknown': 4}
  assert report['files_outside_class_folders'] == [
      os.path.realpath(os.path.join(root, 'loose.jpg'))]
  reasons = {os.path.basename(s['file']): s['reason']
             for s in report['skipped']}
  assert len(reasons) == image_trees.UNUSABLE_AWKWARD + 1
  assert 'too many pixels' in reasons['bomb.png']
  assert json.dumps(report)  # goes into metrics.json as is


def test_a_tree_without_any_class_folder_is_refused_with_its_path(tmp_path):
  image_trees.write_class_tree(str(tmp_path), {'': {'other': 1}})
  with pytest.raises(image_dir.PhotoFolderError, match=str(tmp_path)):
    _load_tree(tmp_path)
  missing = tmp_path / 'nowhere'
  with pytest.raises(image_dir.PhotoFolderError,
                     match=f'^{missing} does not exist$'):
    _load_tree(missing)


def test_photos_to_score_are_loaded_within_the_limits(tmp_path):
  """predict's loading: each file too large, in too many pixels or in no
  photo format is reported with its reason; the photos are scored."""
  image_trees.write(str(tmp_path / 'a.jpg'),
                    image_trees.encode(image_trees.photo(1)))
  image_trees.write(str(tmp_path / 'pixels.png'),
                    image_trees.pixel_bomb(3000, 3000))
  image_trees.write(str(tmp_path / 'portrait.jpg'),
                    image_trees.encode(image_trees.photo(2), 'PPM'))
  with open(tmp_path / 'huge.tif', 'wb') as f:
    f.truncate(2**30)  # sparse
  paths = photo_files.expand_paths([str(tmp_path)])
  loaded, failed = photo_files.load_images(paths, _recipe(8_000_000))
  assert [os.path.basename(p) for p, _ in loaded] == ['a.jpg']
  reasons = {os.path.basename(p): r for p, r in failed}
  assert reasons['pixels.png'].startswith('too many pixels: 3000x3000')
  assert reasons['portrait.jpg'].startswith('not an image in a supported')
  assert reasons['huge.tif'].startswith('1.0 GiB: larger than any photo')
