"""evaluate --image_dir and predict, run as a user runs them."""

import csv
import json
import os

import numpy as np
from PIL import Image
import pytest

from helpers import dataset_config
from helpers import run_module
import image_trees
from skinjax import data
from skinjax.data import pipeline



def _test_split_as_tree(data_dir, root, flags):
  """The prepared test split written out as root/<folder>/<i>.png, with
  folders spelled as a user might; returns {folder: count}."""
  config = {f.split('=')[0][len('--config.'):]: f.split('=', 1)[1]
            for f in flags}
  builder = data.get_builder(dataset_config(config['dataset.name'], data_dir))
  names = builder.info.features['label'].names
  source = pipeline.data_source(builder, 'test')
  counts = {}
  for i in range(len(source)):
    example = source[i]
    label = int(example['label'])
    if label >= 4:
      continue  # two classes absent from this clinic's folders
    folder = names[label].upper() if label != 1 else 'Rings'
    image_trees.write(os.path.join(root, folder, f'{i}.png'),
                      example['image'])
    counts[folder] = counts.get(folder, 0) + 1
  image_trees.write(os.path.join(root, 'Warts', 'a.jpg'),
                    image_trees.encode(image_trees.photo(0)))
  return names, counts


@pytest.mark.slow  # the default tier's 10-minute budget
def test_image_dir_maps_skips_and_restricts_folders(trained_run, small_data_dir,
                                                    tmp_path):
  workdir, flags = trained_run
  names, counts = _test_split_as_tree(small_data_dir, tmp_path / 'clinic',
                                      flags)
  label_map = tmp_path / 'map.json'
  label_map.write_text(json.dumps({'rings': names[1]}))
  result = run_module('skinjax.evaluate', [
      '--workdir', str(workdir), '--image_dir', str(tmp_path / 'clinic'),
      '--label_map', str(label_map), '--restrict_to_present_classes'])
  assert result.returncode == 0, result.stderr[-3000:]
  assert "skipped folder 'Warts' (1 files)" in result.stderr
  out = workdir / 'eval' / 'dir_clinic'
  with open(out / 'metrics.json') as f:
    metrics = json.load(f)
  assert metrics['class_names'] == names[:4]
  assert metrics['num_examples'] == sum(counts.values())
  assert metrics['image_dir']['unmatched_folders'] == {'Warts': 1}
  assert 0 <= metrics['unfamiliar']['shift']['flagged'] <= 1  # distance from
  assert 'skin_tone' in metrics  # the training photos; results by skin tone
  assert metrics['image_dir']['folders']['Rings'] == names[1]
  support = {n: metrics['per_class'][n]['support'] for n in names[:4]}
  assert support == {names[i]: counts[names[i].upper() if i != 1 else 'Rings']
                     for i in range(4)}
  assert 'Warts (1 files)' in (out / 'report.md').read_text()


def test_predict_ranks_classes_and_reports_bad_files(trained_run, tmp_path):
  workdir, flags = trained_run
  photos = tmp_path / 'photos'
  image_trees.write(str(photos / 'a.jpg'),
                    image_trees.encode(image_trees.photo(1, 80, 60)))
  awkward = image_trees.awkward_files(seed=3)
  for name in ('grey.png', 'rgba.png', 'corrupt.jpg', 'empty.jpg'):
    image_trees.write(str(photos / 'more' / name), awkward[name])
  image_trees.write(str(photos / 'bomb.png'), image_trees.decompression_bomb())
  output = tmp_path / 'predictions.csv'
  result = run_module('skinjax.predict', [
      '--workdir', str(workdir), '--top_k', '3', '--output', str(output),
      '--saliency', str(tmp_path / 'cams'), str(photos / 'a.jpg'),
      str(photos / 'more'), str(photos / '*.png'),
      str(tmp_path / 'missing.jpg')])
  assert result.returncode == 0, result.stderr[-3000:]
  for name, reason in (('corrupt.jpg', 'corrupt'), ('empty.jpg', 'empty'),
                       ('bomb.png', 'too many pixels'),
                       ('missing.jpg', 'unreadable')):
    line = next(l for l in result.stderr.splitlines() if name in l)
    assert line.startswith('skipped') and reason in line, line
  with open(output) as f:
    rows = list(csv.DictReader(f))
  assert [os.path.basename(r['file']) for r in rows] == [
      'a.jpg', 'grey.png', 'rgba.png']
  step = int(result.stdout.split('checkpoint step ')[1].split(',')[0])
  calibration = json.loads((workdir / 'calibration' / f'{step}.json')
                           .read_text())
  for row in rows:
    probabilities = [float(row[f'probability_{i}']) for i in (1, 2, 3)]
    assert probabilities == sorted(probabilities, reverse=True)
    assert 0 < sum(probabilities) <= 1 + 1e-6
    threshold = calibration['threshold']
    assert row['uncertain'] == str(threshold is None or
                                   probabilities[0] < threshold)
  cams = sorted(os.listdir(tmp_path / 'cams'))
  assert len(cams) == 3 and cams[0].endswith('a_gradcam.png')
  overlay = np.asarray(Image.open(tmp_path / 'cams' / cams[0]))
  assert overlay.ndim == 3 and overlay.shape[0] > 100
