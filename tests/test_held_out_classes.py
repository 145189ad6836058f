"""Classes held out of training: their photos become the unknown conditions
the 'unfamiliar' scores are measured on."""

import json

import numpy as np
import pytest

from helpers import dataset_config, run_module, tiny_run_flags, train
from skinjax import data
from skinjax.data import pipeline
from skinjax.data.builders import lesion_drawing
from skinjax.data.prepare import files

HELD_OUT = (lesion_drawing.CLASS_NAMES[1], lesion_drawing.CLASS_NAMES[4])


def test_held_out_classes_leave_the_splits_and_the_labels(small_data_dir):
  builder = data.get_builder(dataset_config('synthetic_lesions/small',
                                            small_data_dir))
  names = pipeline.class_names(builder, HELD_OUT)
  assert names == [n for n in lesion_drawing.CLASS_NAMES if n not in HELD_OUT]
  full = pipeline.data_source(builder, 'test')
  kept = pipeline.data_source(builder, 'test', HELD_OUT)
  unknown = pipeline.held_out_source(builder, 'test', HELD_OUT)
  assert len(kept) + len(unknown) == len(full) == 60
  labels = pipeline.read_labels(kept)
  np.testing.assert_array_equal(np.bincount(labels), [10] * 4)
  originals = {full[i]['id']: full[i]['label'] for i in range(len(full))}
  for i in range(len(kept)):
    example = kept[i]
    assert names[example['label']] == lesion_drawing.CLASS_NAMES[
        originals[example['id']]]
  assert {lesion_drawing.CLASS_NAMES[originals[unknown[i]['id']]]
          for i in range(len(unknown))} == set(HELD_OUT)
  with pytest.raises(files.CollectionError, match='melanoma'):
    pipeline.class_names(builder, ('melanoma',))


@pytest.mark.slow
def test_a_run_without_two_classes_finds_their_photos(small_data_dir,
                                                      tmp_path):
  workdir = tmp_path / 'run'
  train(workdir, tiny_run_flags(small_data_dir, **{
      'dataset.held_out_classes': repr(HELD_OUT)}))
  result = run_module('skinjax.evaluate', ['--workdir', str(workdir)])
  assert result.returncode == 0, result.stderr[-3000:]
  metrics = json.loads((workdir / 'eval' / 'test' / 'metrics.json').read_text())
  assert len(metrics['class_names']) == 4 and metrics['num_examples'] == 40
  held_out = metrics['held_out']
  assert held_out['num_examples'] == 20
  assert held_out['classes'] == list(HELD_OUT)
  for name in ('msp', 'energy', 'mahalanobis'):
    assert 0 <= held_out['scores'][name]['auroc'] <= 1
  assert 'classes held out of training' in (
      workdir / 'eval' / 'test' / 'report.md').read_text()
