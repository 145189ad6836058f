"""Evaluating photos that were never prepared: folder matching and loading."""

import json
import os

import pytest

import image_trees
from skinjax.data.prepare import scoring_photos

_CLASSES = ['acne', 'eczema', 'psoriasis']


def test_folders_match_class_names_ignoring_case_or_through_the_map():
  matched, unmatched = scoring_photos.match_folders(
      ['ACNE', 'Eczema', 'Psoriasis pictures', 'nails'], _CLASSES,
      {'psoriasis PICTURES': 'Psoriasis'})
  assert matched == {'ACNE': 0, 'Eczema': 1, 'Psoriasis pictures': 2}
  assert unmatched == ['nails']


def test_a_label_map_naming_an_unknown_class_is_refused():
  with pytest.raises(scoring_photos.PhotoFolderError,
                     match="'warts'.*not a class"):
    scoring_photos.match_folders(['Warts'], _CLASSES, {'Warts': 'warts'})


def test_label_map_file_errors_name_the_file(tmp_path):
  bad = tmp_path / 'map.json'
  bad.write_text('["acne"]')
  with pytest.raises(scoring_photos.PhotoFolderError, match=str(bad)):
    scoring_photos.read_label_map(str(bad))
  bad.write_text('{not json')
  with pytest.raises(scoring_photos.PhotoFolderError, match=str(bad)):
    scoring_photos.read_label_map(str(bad))


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
  examples, report = scoring_photos.load_tree(root, _CLASSES, max_short_side=16)
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
  with pytest.raises(scoring_photos.PhotoFolderError, match=str(tmp_path)):
    scoring_photos.load_tree(str(tmp_path), _CLASSES, max_short_side=16)
  missing = tmp_path / 'nowhere'
  with pytest.raises(scoring_photos.PhotoFolderError,
                     match=f'^{missing} does not exist$'):
    scoring_photos.load_tree(str(missing), _CLASSES, max_short_side=16)
