"""Unknown-condition scores, the 'unfamiliar' flag of predict, and evaluate
--ood_image_dir, on real trained checkpoints and scikit-image's photos."""

import json

import numpy as np
from PIL import Image
import pytest

from helpers import dataset_config
from helpers import run_module
import image_trees
import wandb_log
from skinjax import data
from skinjax.data import pipeline
from skinjax.evaluation import unfamiliar
from skinjax.inference import unfamiliar as unfamiliar_scores

skimage_data = pytest.importorskip('skimage.data')

# scikit-image's bundled colour photos of things that are not skin.
NOT_SKIN = ('chelsea', 'coffee', 'astronaut', 'rocket')


def test_mahalanobis_measures_distance_from_the_training_classes():
  rng = np.random.default_rng(0)
  means = rng.normal(0, 4, (3, 16))
  labels = rng.integers(0, 3, 3000)
  train = means[labels] + rng.normal(0, 1, (3000, 16))
  statistics = unfamiliar.fit_feature_statistics(train, labels, 3)
  np.testing.assert_allclose(statistics['means'], means, atol=0.15)
  familiar = means[labels[:500]] + rng.normal(0, 1, (500, 16))
  stranger = rng.normal(0, 4, (500, 16))  # not near any class
  in_scores = unfamiliar_scores.mahalanobis(familiar, statistics)
  out_scores = unfamiliar_scores.mahalanobis(stranger, statistics)
  assert np.median(in_scores) == pytest.approx(16, rel=0.2)  # chi-squared, 16 dof
  diff = stranger[:, None] - statistics['means'][None]  # the definition
  np.testing.assert_allclose(out_scores, np.einsum(
      'ncd,de,nce->nc', diff, statistics['precision'], diff).min(axis=1),
                             rtol=1e-10)
  found = unfamiliar.separation(in_scores, out_scores)
  assert found['auroc'] > 0.95 and found['fpr_at_tpr'] < 0.1
  same = unfamiliar.separation(in_scores[:250], in_scores[250:])
  assert abs(same['auroc'] - 0.5) < 0.1
  assert same['fpr_at_tpr'] == pytest.approx(0.95, abs=0.05)


def test_scores_rank_confident_logits_as_familiar():
  confident, flat = np.array([[9.0, 0.0, 0.0]]), np.array([[0.1, 0.0, 0.0]])
  for name in ('msp', 'energy'):
    assert (unfamiliar_scores.scores(confident, None, None)[name]
            < unfamiliar_scores.scores(flat, None, None)[name]), name


def _write_not_skin(folder):
  folder.mkdir()
  for name in NOT_SKIN:
    Image.fromarray(getattr(skimage_data, name)()).save(folder / f'{name}.png')
  return folder


def _test_photos(data_dir, folder):
  builder = data.get_builder(dataset_config('synthetic_lesions/small', data_dir))
  source = pipeline.data_source(builder, 'test')
  folder.mkdir()
  for i in range(len(source)):
    image_trees.write(str(folder / f'{i:02d}.png'), source[i]['image'])
  return folder


def test_predict_flags_a_cat_but_not_the_test_photos(trained_run,
                                                     small_data_dir, tmp_path):
  workdir, _ = trained_run
  photos = _test_photos(small_data_dir, tmp_path / 'test')
  cat = tmp_path / 'chelsea.png'
  Image.fromarray(skimage_data.chelsea()).save(cat)
  rocket = tmp_path / 'rocket.png'
  Image.fromarray(skimage_data.rocket()).save(rocket)
  output = tmp_path / 'out.json'
  result = run_module('skinjax.predict', [
      '--workdir', str(workdir), str(cat), str(rocket), str(photos),
      '--output', str(output)])
  assert result.returncode == 0, result.stderr[-3000:]
  rows = {r['file']: r for r in json.loads(output.read_text())}
  assert rows[str(cat)]['unfamiliar'], rows[str(cat)]
  assert 'UNFAMILIAR' in result.stdout
  # The quality gate needs no model: both are 'no skin in view'.
  for photo in (cat, rocket):
    assert 'no_skin' in rows[str(photo)]['quality']['reasons'], rows[
        str(photo)]
  assert 'QUALITY: no skin in view' in result.stdout
  test_rows = [r for f, r in rows.items() if f not in (str(cat), str(rocket))]
  assert len(test_rows) == 60
  # The threshold leaves 95% of validation photos unflagged; the gate's
  # two relative checks 1% each.
  assert np.mean([r['unfamiliar'] for r in test_rows]) <= 0.15
  assert np.mean([r['quality']['flagged'] for r in test_rows]) <= 0.1
  assert {r['skin_tone'] for r in test_rows} <= {
      'very_light', 'light', 'intermediate', 'tan', 'brown', 'dark'}


@pytest.mark.slow
def test_evaluate_scores_photos_that_are_not_skin(trained_run, tmp_path):
  workdir, _ = trained_run
  folder = _write_not_skin(tmp_path / 'not_skin')
  (folder / 'notes.png').write_bytes(b'not a png')
  result = run_module('skinjax.evaluate', [
      '--workdir', str(workdir), '--ood_image_dir', str(folder)])
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'notes.png' in result.stderr
  metrics = json.loads((workdir / 'eval' / 'test' / 'metrics.json').read_text())
  ood = metrics['ood']
  assert ood['num_examples'] == len(NOT_SKIN) and len(ood['skipped']) == 1
  assert set(ood['scores']) == set(unfamiliar.SCORES)
  assert ood['scores']['mahalanobis']['auroc'] > 0.9, ood['scores']
  assert ood['flagged'] >= 0.75
  assert metrics['unfamiliar']['flagged'] <= 0.15
  # The test split is drawn like validation: no shift to warn about.
  assert metrics['unfamiliar']['shift']['warning'] is None
  assert set(metrics['unfamiliar']['shift']['scores']) == set(
      unfamiliar.SCORES)
  # Results by skin tone, and the estimate against the tone drawn.
  tone = metrics['skin_tone']
  assert sum(g['support'] for g in tone['groups'].values()) + tone[
      'unknown'] == metrics['num_examples']
  assert tone['estimate_vs_drawn']['pearson_r'] >= 0.9
  report = (workdir / 'eval' / 'test' / 'report.md').read_text()
  assert '## Unfamiliar photos' in report and 'mahalanobis' in report
  assert '## By skin tone' in report and 'by_skin_tone.png' in report
  logged = {k: v for row in wandb_log.history(workdir / 'wandb')
            for k, v in row.items() if k.startswith('test/')}
  assert logged['test/ood/mahalanobis_auroc'] == pytest.approx(
      ood['scores']['mahalanobis']['auroc'])
  for group, entry in tone['groups'].items():
    assert logged[f'test/skin_tone/{group}/support'] == entry['support']
  assert logged['test/by_skin_tone/_type'] == 'image-file'
  calibration = json.loads(
      (workdir / 'calibration' / f"{metrics['checkpoint_step']}.json")
      .read_text())
  assert calibration['unfamiliar_score'] == 'mahalanobis'
  assert calibration['unfamiliar_threshold'] == metrics['unfamiliar'][
      'threshold']
