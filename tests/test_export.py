"""Exports of a calibrated checkpoint (skinjax.export): ONNX run by
onnxruntime and StableHLO reloaded by jax.export compute the JAX model's
calibrated probabilities, and carry its metadata."""

import json
import os
import pathlib
import zipfile

import numpy as np
from PIL import Image
import pytest

from helpers import run_module, tiny_run_flags, train

from skinjax import data
from skinjax.data import pipeline
from skinjax.data import preprocess
from skinjax.evaluation import metrics
from skinjax.inference import forward
from skinjax.run_folder import run_config
from skinjax.exporting import exported
from skinjax.exporting import writer
from skinjax.inference import restore

NUM_PHOTOS = 100


def _checkpoint(workdir):
  config = run_config.for_evaluation(str(workdir), {})
  return config, restore.load(config, str(workdir), 'best')


def _photos(config, count=NUM_PHOTOS):
  """The test split's photos as the model sees them, topped up to `count`
  with generated ones: smooth colour fields and noise."""
  builder = data.load_builder(config.dataset)
  source = pipeline.data_source(builder, 'test')
  size = config.image_size
  photos = [preprocess.center_crop(
      preprocess.open_image(source[i]['image']), size,
      config.augment.eval_crop_fraction)
            for i in range(min(len(source), count))]
  rng = np.random.default_rng(1)
  ramp = np.linspace(0, 1, size)[:, None, None]
  while len(photos) < count:
    if len(photos) % 2:
      photo = rng.integers(0, 256, (size, size, 3))
    else:
      photo = 255 * (ramp * rng.random(3) + ramp.transpose(1, 0, 2)
                     * rng.random(3)) / 2
    photos.append(photo.astype(np.uint8))
  return np.stack(photos)


def _jax_probabilities(checkpoint, images):
  """What evaluate and predict compute: the jitted eval step on the batch,
  then the temperature."""
  batch = {'image': images, 'label': np.zeros(len(images), np.int32),
           'mask': np.ones(len(images), bool)}
  logits = forward.predict(checkpoint.eval_step, checkpoint.state, [batch],
                           checkpoint.mesh)['logits']
  return metrics.softmax(logits / checkpoint.calibration.temperature)


def _assert_same_outputs(model, checkpoint, images):
  want = _jax_probabilities(checkpoint, images)
  got = model.probabilities(images)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
  top3 = lambda p: np.argsort(-p, axis=-1, kind='stable')[:, :3]
  np.testing.assert_array_equal(top3(got), top3(want))


def _assert_metadata(meta, config, checkpoint):
  assert meta['class_names'] == list(checkpoint.class_names)
  assert meta['temperature'] == checkpoint.calibration.temperature
  assert meta['abstain_threshold'] == checkpoint.calibration.threshold
  calibration = checkpoint.calibration
  assert (meta['unfamiliar_score'], meta['unfamiliar_threshold']) == (
      calibration.unfamiliar_score, calibration.unfamiliar_threshold)
  assert meta['unfamiliar_threshold'] is not None
  assert meta['checkpoint_step'] == checkpoint.step
  assert meta['model'] == config.model.name
  assert meta['image_size'] == config.image_size
  assert meta['input']['preparation']['crop_fraction'] == (
      config.augment.eval_crop_fraction)
  assert meta['skinjax_version']


@pytest.fixture(scope='module')
def resnet_exports(trained_run, tmp_path_factory):
  """(config, checkpoint, {format: path}) of the trained ResNet run."""
  config, checkpoint = _checkpoint(trained_run[0])
  folder = tmp_path_factory.mktemp('exports')
  paths = {}
  for fmt in writer.FORMATS:  # the last through `export`, with its card
    paths[fmt] = str(folder / f'model.{fmt}')
    if fmt == writer.FORMATS[-1]:
      writer.export(config, str(trained_run[0]), fmt, paths[fmt])
    else:
      writer.write(config, checkpoint, fmt, paths[fmt])
  return config, checkpoint, paths


def test_an_export_has_its_model_card_beside_it(resnet_exports, trained_run):
  """MODEL_CARD.md beside the file: the exported checkpoint, its run's
  environment and data licence, and the test results if the run has them
  (test_end_to_end checks those figures against metrics.json)."""
  config, checkpoint, paths = resnet_exports
  fmt = writer.FORMATS[-1]
  card = (pathlib.Path(paths[fmt]).parent / 'MODEL_CARD.md').read_text()
  environment = json.loads((trained_run[0] / 'environment.json').read_text())
  assert card.startswith(f'# Model card: {config.model.name} on '
                         f'{config.dataset.name}\n')
  assert (f'Model: {config.model.name}, checkpoint {checkpoint.step}, raw '
          'weights') in card
  assert f'Exported as {fmt}: `model.{fmt}`' in card
  assert environment[-1]['git_commit'] in card
  assert 'Licence: Apache-2.0' in card and 'not a diagnosis' in card
  assert ('## Results on the test split' in card and
          ('| top1 |' in card or 'Not evaluated yet' in card))


@pytest.mark.parametrize('fmt', writer.FORMATS)
def test_resnet_export_matches_the_model(resnet_exports, fmt):
  config, checkpoint, paths = resnet_exports
  model = exported.load(paths[fmt])
  assert model.format == fmt
  _assert_metadata(model.metadata, config, checkpoint)
  images = _photos(config)
  _assert_same_outputs(model, checkpoint, images)
  # The batch dimension is free.
  np.testing.assert_allclose(model.probabilities(images[:1]),
                             model.probabilities(images)[:1], atol=1e-6)


def test_onnx_metadata_reads_without_skinjax(resnet_exports):
  """An integrator's few lines: onnxruntime's metadata map, JSON values."""
  import onnxruntime  # pylint: disable=g-import-not-at-top
  _, checkpoint, paths = resnet_exports
  session = onnxruntime.InferenceSession(paths['onnx'])
  meta = session.get_modelmeta().custom_metadata_map
  assert json.loads(meta['class_names']) == list(checkpoint.class_names)
  (images,) = session.get_inputs()
  assert images.name == 'images' and images.type == 'tensor(uint8)'
  assert not isinstance(images.shape[0], int)  # dynamic batch


def test_stablehlo_reads_without_skinjax(resnet_exports):
  """The same with the zip and jax.export: a program of symbolic batch."""
  import jax  # pylint: disable=g-import-not-at-top
  config, checkpoint, paths = resnet_exports
  with zipfile.ZipFile(paths['stablehlo']) as archive:
    meta = json.loads(archive.read('metadata.json'))
    program = jax.export.deserialize(archive.read('model.jax_exported'))
  assert meta['class_names'] == list(checkpoint.class_names)
  ((images,), (probabilities,)) = program.in_avals, program.out_avals
  size = config.image_size
  assert images.dtype == np.uint8 and images.shape[1:] == (size, size, 3)
  assert probabilities.shape[1:] == (len(checkpoint.class_names),)
  assert not isinstance(images.shape[0], int)
  assert str(images.shape[0]) == str(probabilities.shape[0]) == 'batch'


def test_loader_refuses_damaged_and_foreign_files(resnet_exports, tmp_path):
  config, _, paths = resnet_exports
  damaged = {}
  for fmt, path in paths.items():
    with open(path, 'rb') as f:
      content = f.read()
    damaged[f'truncated.{fmt}'] = content[:len(content) // 2]
  damaged['random.bin'] = np.random.default_rng(0).bytes(4096)
  damaged['empty.onnx'] = b''
  with zipfile.ZipFile(tmp_path / 'foreign.zip', 'w') as archive:
    archive.writestr('readme.txt', 'not a model')
  for name, content in damaged.items():
    (tmp_path / name).write_bytes(content)
  for name in [*damaged, 'foreign.zip', 'missing.onnx']:
    with pytest.raises(exported.ExportedModelError, match=name):
      exported.load(str(tmp_path / name))
  model = exported.load(paths['onnx'])
  size = config.image_size
  for wrong in (np.zeros((2, size, size, 3), np.float32),
                np.zeros((2, size + 1, size, 3), np.uint8)):
    with pytest.raises(exported.ExportedModelError, match='images'):
      model.probabilities(wrong)


def _zip(path, members, compression=zipfile.ZIP_DEFLATED):
  with zipfile.ZipFile(path, 'w', compression) as archive:
    for member, content in members.items():
      archive.writestr(member, content)
  return str(path)


def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path):
  """16 MiB of zeros deflate to 16 KiB: refused from the size the zip
  declares, as is a metadata.json over 1 MiB. A zip that declares 1 KiB for
  the same member is cut off there and refused, never inflated whole."""
  meta = json.dumps({'format_version': exported.FORMAT_VERSION})
  zeros = bytes(16 << 20)
  bombs = {
      'model.zip': {exported.METADATA_FILE: meta,
                    exported.EXPORTED_FILE: zeros},
      'meta.zip': {exported.METADATA_FILE: ' ' * (2 << 20) + meta},
  }
  for name, members in bombs.items():
    path = _zip(tmp_path / name, members)
    assert os.path.getsize(path) < 40_000
    with pytest.raises(exported.ExportedModelError,
                       match=f'{name}: .* inflates to .* allowed') as refusal:
      exported.load(path)
    assert '\n' not in str(refusal.value)
  with open(tmp_path / 'model.zip', 'rb') as f:
    data = bytearray(f.read())
  # Declare 1 KiB in the zeros' central directory entry (the last one; its
  # size field is at offset 24), which is what a reader goes by.
  entry = data.rindex(b'PK\x01\x02')
  data[entry + 24:entry + 28] = (1024).to_bytes(4, 'little')
  (tmp_path / 'lying.zip').write_bytes(data)
  with pytest.raises(exported.ExportedModelError,
                     match='lying.zip: not a readable StableHLO export'):
    exported.load(str(tmp_path / 'lying.zip'))
  # Flagged encrypted (offset 8), or a method zipfile lacks (offset 10).
  for offset, value, name in ((8, 1, 'encrypted.zip'), (10, 99, 'method.zip')):
    odd = bytearray(data)
    odd[entry + offset:entry + offset + 2] = value.to_bytes(2, 'little')
    (tmp_path / name).write_bytes(odd)
    with pytest.raises(exported.ExportedModelError,
                       match=f'{name}: a member is encrypted or compressed'):
      exported.load(str(tmp_path / name))


def test_export_refuses_a_model_that_differs(resnet_exports, tmp_path,
                                             monkeypatch):
  """The check before writing: an export that computes something else
  (here, the StableHLO of a different temperature) leaves no file."""
  config, checkpoint, _ = resnet_exports
  convert = writer.to_stablehlo
  monkeypatch.setitem(
      writer._CONVERTERS, 'stablehlo',  # pylint: disable=protected-access
      lambda fn, meta: convert(lambda images: fn(images) ** 2, meta))
  output = tmp_path / 'model.zip'
  with pytest.raises(writer.ExportError, match='nothing written'):
    writer.write(config, checkpoint, 'stablehlo', str(output))
  assert not os.listdir(tmp_path)


@pytest.fixture(scope='module')
def efficientnet_run(small_data_dir, tmp_path_factory):
  """A 4-step EfficientNet-Lite0 run at 32 px."""
  workdir = tmp_path_factory.mktemp('efficientnet')
  train(workdir, tiny_run_flags(
      small_data_dir, **{'model.name': 'efficientnet_lite0',
                         'num_train_steps': 4, 'eval_every_steps': 4,
                         'checkpoint_every_steps': 4, 'log_every_steps': 2,
                         'evaluation.calibrate_after_training': True}))
  return workdir


@pytest.mark.slow
def test_efficientnet_exports_match_the_model(efficientnet_run, tmp_path):
  """ONNX from the command line, StableHLO from the function it calls."""
  config, checkpoint = _checkpoint(efficientnet_run)
  images = _photos(config)
  onnx_file, stablehlo_file = (str(tmp_path / 'model.onnx'),
                               str(tmp_path / 'model.zip'))
  result = run_module('skinjax.export', [
      '--workdir', str(efficientnet_run), '--format', 'onnx', '--output',
      onnx_file])
  assert result.returncode == 0, result.stderr[-3000:]
  assert onnx_file in result.stdout
  writer.write(config, checkpoint, 'stablehlo', stablehlo_file)
  nowhere = str(tmp_path / 'missing' / 'model.onnx')
  result = run_module('skinjax.export', [
      '--workdir', str(efficientnet_run), '--format', 'onnx', '--output',
      nowhere])
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      f'error: --output={nowhere}: not a file in an existing folder']
  for output in (onnx_file, stablehlo_file):
    model = exported.load(output)
    _assert_metadata(model.metadata, config, checkpoint)
    _assert_same_outputs(model, checkpoint, images)


@pytest.mark.slow
def test_prepared_photos_score_as_predict_scores_them(trained_run,
                                                      resnet_exports,
                                                      tmp_path):
  """Photo files through exported.prepare and the ONNX export give what
  `skinjax.predict` gives for them: no drift in the preparation."""
  workdir, _ = trained_run
  _, checkpoint, paths = resnet_exports
  rng = np.random.default_rng(2)
  files = []
  for i, shape in enumerate([(50, 70), (90, 40), (33, 33)]):
    files.append(str(tmp_path / f'photo{i}.png'))
    Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
                    ).save(files[-1])
  output = str(tmp_path / 'predictions.json')
  result = run_module('skinjax.predict', [
      '--workdir', str(workdir), '--top_k', str(len(checkpoint.class_names)),
      '--output', output, *files])
  assert result.returncode == 0, result.stderr[-3000:]
  with open(output) as f:
    rows = json.load(f)
  model = exported.load(paths['onnx'])
  probabilities = model.probabilities(
      np.stack([exported.prepare(f, model.metadata) for f in files]))
  names = model.metadata['class_names']
  for row, p in zip(rows, probabilities):
    for name, q in row['differential']:
      assert abs(p[names.index(name)] - q) < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize('name', ['vit_small_patch14_dinov2',
                                  'convnext_tiny'])
def test_vit_and_convnext_runs_export_and_explain(small_data_dir, tmp_path,
                                                  name):
  """A 2-step run of each new family (no BatchNorm) exports to ONNX and
  StableHLO computing its calibrated probabilities, and its Grad-CAM map
  covers the photo."""
  from skinjax.inference import saliency  # pylint: disable=g-import-not-at-top
  size = 28 if name.startswith('vit') else 32  # 2x2 patches; one 1x1 map
  workdir = tmp_path / 'run'
  train(workdir, tiny_run_flags(
      small_data_dir, **{'model.name': name, 'image_size': size,
                         'num_train_steps': 2, 'eval_every_steps': 2,
                         'checkpoint_every_steps': 2, 'log_every_steps': 1,
                         'optimizer.learning_rate': 1e-3,
                         'optimizer.name': 'adamw',
                         'evaluation.calibrate_after_training': True}))
  config, checkpoint = _checkpoint(workdir)
  images = _photos(config, 8)
  for fmt in writer.FORMATS:
    output = str(tmp_path / f'model.{fmt}')
    writer.write(config, checkpoint, fmt, output)
    model = exported.load(output)
    _assert_metadata(model.metadata, config, checkpoint)
    _assert_same_outputs(model, checkpoint, images)
  variables = {'params': checkpoint.state.params,
               'batch_stats': checkpoint.state.batch_stats}
  cam = saliency.grad_cam(checkpoint.model, variables, images[:2],
                          np.array([0, 1]))
  assert cam.shape == (2, size, size) and float(cam.max()) <= 1
