"""Real-dataset builders, prepared from trees the tests write in each layout."""

import csv
import io
import json
import os
import shutil

import numpy as np
from PIL import Image
import pytest

from helpers import dataset_config, run_module
import image_trees
from skinjax import data
from skinjax.config import defaults
from skinjax.data import pipeline
from skinjax.data.builders import dermnet
from skinjax.data.prepare import collection
from skinjax.data.prepare import files

_DERMNET = dict(dermnet.CATEGORIES)
_ACNE = _DERMNET['acne_rosacea']
_ECZEMA = _DERMNET['eczema']
_HAIR = _DERMNET['hair_loss']


def _prepare(name, data_dir, manual_dir, **overrides):
  builder = data.get_builder(dataset_config(name, data_dir, manual_dir,
                                            **overrides))
  data.prepare(builder, str(manual_dir))
  return data.get_builder(dataset_config(name, data_dir, manual_dir,
                                         **overrides))


def _examples(builder, split):
  source = pipeline.data_source(builder, split)
  return [source[i] for i in range(len(source))]


def _report(builder):
  with open(os.path.join(builder.data_dir, collection.REPORT_FILE)) as f:
    return json.load(f)


def _decode(example):
  return Image.open(io.BytesIO(example['image']))


@pytest.fixture(scope='module')
def dermnet_tree(tmp_path_factory):
  root = tmp_path_factory.mktemp('dermnet') / 'archive'
  image_trees.write_class_tree(str(root), {
      'train': {_ACNE: 10, _ECZEMA: 10, _HAIR: 4, 'Mystery Rash': 2},
      'test': {_ACNE: 3, _ECZEMA: 3}})
  for name, content in image_trees.awkward_files(100).items():
    image_trees.write(str(root / 'train' / _ACNE / name), content)
  # The same photo in train and test, and a re-encoded copy within train.
  same = image_trees.photo(999)
  image_trees.write(str(root / 'train' / _ECZEMA / 'dup.jpg'),
                    image_trees.encode(same))
  image_trees.write(str(root / 'test' / _ECZEMA / 'dup.jpg'),
                    image_trees.encode(same))
  decoded = Image.open(io.BytesIO(image_trees.encode(same)))
  image_trees.write(str(root / 'train' / _ACNE / 'dup_as_png.png'),
                    image_trees.encode(decoded, 'PNG'))
  return root


def test_dermnet_counts_labels_and_report(dermnet_tree, tmp_path):
  builder = _prepare('dermnet/23', tmp_path, dermnet_tree)
  names = builder.info.features['label'].names
  assert len(names) == 23 and names[0] == 'acne_rosacea'
  assert builder.info.metadata['folder_names']['eczema'] == _ECZEMA
  report = _report(builder)
  # train + validation: acne 10 + 5 usable awkward files, eczema 10, hair
  # loss 4; dup.jpg and dup_as_png.png are dropped from train because the
  # same photo is in test. test: 3 + 3 + dup.jpg.
  assert report['examples'] == {'train': 26, 'validation': 3, 'test': 7}
  assert sorted(s['file'].rsplit('/', 1)[1] for s in report['skipped']) == [
      'corrupt.jpg', 'empty.jpg', 'notes.txt', 'truncated.jpg']
  reasons = {s['file'].rsplit('/', 1)[1]: s['reason'] for s in report['skipped']}
  assert reasons['empty.jpg'] == 'empty file'
  assert reasons['notes.txt'].startswith('not an image in a supported format')
  assert 'truncated' in reasons['truncated.jpg']
  assert report['unknown_folders_ignored'] == ['Mystery Rash']
  assert len(report['category_folders_missing']) == 20
  assert 'Urticaria Hives' in report['category_folders_missing']
  [duplicate] = report['duplicates']
  assert duplicate['splits'] == ['test', 'train'] and not duplicate[
      'identical_bytes']  # two JPEG copies and a PNG re-encode
  assert sorted(os.path.basename(d) for d in duplicate['dropped']) == [
      'dup.jpg', 'dup_as_png.png']
  counts = builder.info.metadata['class_counts']
  assert counts['test']['eczema'] == 4 and counts['train']['hair_loss'] + counts[
      'validation']['hair_loss'] == 4
  labels = {e['id'].decode(): names[e['label']]
            for s in ('train', 'validation', 'test')
            for e in _examples(builder, s)}
  assert labels[f'test/{_ECZEMA}/dup.jpg'] == 'eczema'
  assert f'train/{_ECZEMA}/dup.jpg' not in labels


def test_awkward_images_are_upright_8_bit_rgb(dermnet_tree, tmp_path):
  builder = _prepare('dermnet/23', tmp_path, dermnet_tree)
  examples = {e['id'].decode().rsplit('/', 1)[1]: e
              for s in ('train', 'validation') for e in _examples(builder, s)}
  for name in ('grey.png', 'cmyk.jpg', 'rgba.png', 'sixteen_bit.png'):
    image = _decode(examples[name])
    assert image.format == 'JPEG' and image.mode == 'RGB', name
  assert _decode(examples['rotated.jpg']).size == (30, 40)  # EXIF applied
  ramp = np.asarray(_decode(examples['sixteen_bit.png']))[..., 0]
  assert ramp[0, 0] < 20 and ramp[-1, -1] > 235  # scaled, not clipped
  assert 100 < np.median(ramp) < 155


def test_validation_is_stratified_and_deterministic(dermnet_tree, tmp_path):
  first = _prepare('dermnet/23', tmp_path / 'a', dermnet_tree)
  again = _prepare('dermnet/23', tmp_path / 'b', dermnet_tree)
  ids = lambda b: sorted(e['id'] for e in _examples(b, 'validation'))
  assert ids(first) == ids(again)
  per_class = first.info.metadata['class_counts']['validation']
  assert per_class['acne_rosacea'] == 2 and per_class['eczema'] == 1
  other = _prepare('dermnet/23', tmp_path / 'c', dermnet_tree,
                   validation_fraction=0.3)
  assert other.builder_config.name == '23-val0.3'
  assert sum(other.info.metadata['class_counts']['validation'].values()) == 8


def test_a_pixel_limit_of_its_own_is_prepared_into_a_folder_of_its_own(
    tmp_path):
  name = lambda **o: data.get_builder(dataset_config(
      'image_folder/clinic', tmp_path, tmp_path, **o)).builder_config.name
  assert name() == 'clinic'  # the schema's default is the builders'
  assert name(max_image_pixels=10**8) == 'clinic-max100000000pixels'


def test_prepared_dermnet_feeds_worker_processes(dermnet_tree, tmp_path):
  # grain pickles the data source, builder and its config, into each worker.
  builder = _prepare('dermnet/23', tmp_path, dermnet_tree)
  config = defaults.get_config()
  config.image_size, config.batch_size, config.input.num_workers = 16, 4, 1
  batches = pipeline.train_dataset(pipeline.data_source(builder, 'train'),
                                   config, 0, 1)
  assert next(iter(batches))['image'].shape == (4, 16, 16, 3)


def test_dermnet_20_leaves_out_three_categories(dermnet_tree, tmp_path):
  builder = _prepare('dermnet/20', tmp_path, dermnet_tree)
  names = builder.info.features['label'].names
  assert len(names) == 20 and 'hair_loss' not in names
  report = _report(builder)
  assert report['files_in_categories_not_in_this_config'] == 4
  assert sum(report['examples'].values()) == 36 - 4


def test_dermnet_from_the_zip_matches_the_folder(dermnet_tree, tmp_path):
  archive = shutil.make_archive(str(tmp_path / 'dermnet'), 'zip',
                                root_dir=dermnet_tree.parent)
  from_zip = _prepare('dermnet/23', tmp_path / 'z', archive)
  from_folder = _prepare('dermnet/23', tmp_path / 'f', dermnet_tree)
  assert (_report(from_zip)['class_counts']
          == _report(from_folder)['class_counts'])


def test_missing_or_empty_manual_dir_is_a_clear_error(tmp_path):
  with pytest.raises(files.CollectionError,
                     match=f"{tmp_path / 'nowhere'} does "
                     'not exist'):
    _prepare('dermnet/23', tmp_path, tmp_path / 'nowhere')
  (tmp_path / 'empty').mkdir()
  with pytest.raises(files.CollectionError,
                     match=f"{tmp_path / 'empty'} is empty"):
    _prepare('dermnet/23', tmp_path, tmp_path / 'empty')
  image_trees.write(str(tmp_path / 'other' / 'readme.txt'), b'hello')
  with pytest.raises(files.CollectionError,
                     match=f"No images found for dermnet "
                     f"under {tmp_path / 'other'}"):
    _prepare('dermnet/23', tmp_path, tmp_path / 'other')
  with pytest.raises(files.CollectionError,
                     match='prepared from your own copy'):
    _prepare('dermnet/23', tmp_path, '')


def _write_ham(root, layout):
  """HAM10000-like tree: 7 diagnoses, lesions with 1-3 images each."""
  rows, seed = [], 0
  dxs = ['akiec', 'bcc', 'bkl', 'df', 'mel', 'nv', 'vasc']
  for lesion in range(60):
    dx = dxs[lesion % 7] if lesion < 35 else 'nv'  # nv is the majority
    for k in range(1 + lesion % 3):
      seed += 1
      image_id = f'ISIC_{seed:07d}'
      rows.append({'lesion_id': f'HAM_{lesion:07d}', 'image_id': image_id,
                   'dx': dx, 'dx_type': 'histo',
                   'age': '' if seed == 5 else str(30 + k),
                   'sex': 'female', 'localization': 'back'})
      folder = (f'HAM10000_images_part_{1 + seed % 2}' if layout == 'original'
                else os.path.join('images_by_dx', dx))
      image_trees.write(os.path.join(root, folder, f'{image_id}.jpg'),
                        image_trees.encode(image_trees.photo(seed)))
  rows.append(dict(rows[0], image_id='ISIC_9999999'))  # listed, no file
  os.makedirs(root, exist_ok=True)
  with open(os.path.join(root, 'HAM10000_metadata.csv'), 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  return rows[:-1]


@pytest.mark.parametrize('layout', ['original', 'by_class'])
def test_ham10000_splits_by_lesion(tmp_path, layout):
  rows = _write_ham(str(tmp_path / 'ham'), layout)
  builder = _prepare('ham10000', tmp_path / 'tfds', tmp_path / 'ham')
  names = builder.info.features['label'].names
  lesions, total = {}, 0
  for split in ('train', 'validation', 'test'):
    for example in _examples(builder, split):
      total += 1
      lesion = example['lesion_id'].decode()
      assert lesions.setdefault(lesion, split) == split, lesion
  assert total == len(rows)
  truth = {r['image_id']: r for r in rows}
  for example in _examples(builder, 'test'):
    row = truth[example['image_id'].decode()]
    assert names[example['label']] == row['dx']
    assert example['sex'] == b'female' and example['localization'] == b'back'
  ages = [e['age'] for s in ('train', 'validation', 'test')
          for e in _examples(builder, s)]
  assert sum(np.isnan(ages)) == 1
  report = _report(builder)
  assert report['metadata_rows_without_image'] == ['ISIC_9999999']
  test_counts = builder.info.metadata['class_counts']['test']
  assert all(test_counts[dx] >= 1 for dx in names)  # stratified


def _rewrite_metadata(root, rows, encoding='utf-8', fieldnames=None):
  with open(os.path.join(root, 'HAM10000_metadata.csv'), 'w', newline='',
            encoding=encoding) as f:
    writer = csv.DictWriter(f, fieldnames=fieldnames or list(rows[0]),
                            extrasaction='ignore')
    writer.writeheader()
    writer.writerows(rows)


def test_ham10000_metadata_as_a_spreadsheet_saves_it(tmp_path):
  """Excel's byte-order mark is read through; a row with an unknown
  diagnosis is reported and skipped, not fatal."""
  root = str(tmp_path / 'ham')
  rows = _write_ham(root, 'by_class')
  _rewrite_metadata(root, [dict(r, dx='xyz') if i == 1 else r
                           for i, r in enumerate(rows)], encoding='utf-8-sig')
  report = _report(_prepare('ham10000', tmp_path / 'tfds', root))
  assert sum(report['examples'].values()) == len(rows) - 1  # the xyz photo
  assert report['metadata_rows_with_unknown_dx_skipped'] == [
      {'image_id': rows[1]['image_id'], 'dx': 'xyz'}]


def test_ham10000_metadata_problems_are_one_line_naming_the_file(tmp_path):
  root = str(tmp_path / 'ham')
  rows = _write_ham(root, 'by_class')
  csv_path = os.path.join(root, 'HAM10000_metadata.csv')
  _rewrite_metadata(root, rows, fieldnames=['image_id', 'dx', 'age'])
  with pytest.raises(files.CollectionError,
                     match=f'{csv_path}: no column lesion_id, dx_type, sex, '
                     'localization'):
    _prepare('ham10000', tmp_path / 'a', root)
  with open(csv_path, 'wb') as f:
    f.write('lesion_id,image_id,dx\nHAM_1,ISIC_1,n\xe4v\n'.encode('latin-1'))
  with pytest.raises(files.CollectionError,
                     match=f'{csv_path}: not UTF-8 text'):
    _prepare('ham10000', tmp_path / 'b', root)
  with open(csv_path, 'wb') as f:
    f.truncate(300 * 2**20)  # sparse
  with pytest.raises(files.CollectionError,
                     match=f'{csv_path}: 300.0 MiB: larger than any photo'):
    _prepare('ham10000', tmp_path / 'b2', root)
  _rewrite_metadata(root, rows)
  os.makedirs(os.path.join(root, 'old'))
  shutil.copy(csv_path, os.path.join(root, 'old'))
  with pytest.raises(files.CollectionError,
                     match='2 files named HAM10000_metadata.csv'):
    _prepare('ham10000', tmp_path / 'c', root)


def test_dermamnist_keeps_its_splits(tmp_path):
  rng = np.random.default_rng(0)
  arrays = {}
  for key, n in (('train', 14), ('val', 7), ('test', 7)):
    arrays[f'{key}_images'] = rng.integers(0, 255, (n, 28, 28, 3), np.uint8)
    arrays[f'{key}_labels'] = (np.arange(n) % 7).reshape(n, 1)
  (tmp_path / 'npz').mkdir()
  np.savez(tmp_path / 'npz' / 'dermamnist.npz', **arrays)
  builder = _prepare('dermamnist/28', tmp_path / 'tfds', tmp_path / 'npz')
  assert {s: builder.info.splits[s].num_examples
          for s in ('train', 'validation', 'test')} == {
              'train': 14, 'validation': 7, 'test': 7}
  first = _examples(builder, 'train')
  by_id = {e['id'].decode(): e for e in first}
  pixels = np.asarray(_decode(by_id['train_00003']))
  np.testing.assert_array_equal(pixels, arrays['train_images'][3])  # lossless
  assert by_id['train_00003']['label'] == 3


@pytest.mark.parametrize('with_splits', [True, False])
def test_image_folder_classes_from_folders(tmp_path, with_splits):
  layout = ({'train': {'Ringworm': 10, 'Hives': 10},
             'test': {'Ringworm': 2, 'Hives': 2}} if with_splits
            else {'': {'Ringworm': 10, 'Hives': 10}})
  image_trees.write_class_tree(str(tmp_path / 'clinic'), layout)
  builder = _prepare('image_folder/clinic', tmp_path / 'tfds',
                     tmp_path / 'clinic')
  assert builder.info.features['label'].names == ['Hives', 'Ringworm']
  sizes = {s: builder.info.splits[s].num_examples for s in builder.info.splits}
  expected = ({'train': 18, 'validation': 2, 'test': 4} if with_splits
              else {'train': 14, 'validation': 2, 'test': 4})
  assert sizes == expected


def test_class_balanced_sampling_draws_classes_equally():
  from skinjax.config import defaults  # pylint: disable=g-import-not-at-top
  labels = [0] * 90 + [1] * 9 + [2] * 1
  source = [{'image': image_trees.encode(image_trees.photo(i)), 'label': l}
            for i, l in enumerate(labels)]
  config = defaults.get_config()
  config.image_size, config.batch_size, config.class_balance = 8, 30, 'sampling'
  iterator = iter(pipeline.train_dataset(source, config, 0, 1))
  drawn = np.concatenate([next(iterator)['label'] for _ in range(20)])
  counts = np.bincount(drawn, minlength=3) / len(drawn)
  np.testing.assert_allclose(counts, [1 / 3] * 3, atol=0.05)


def test_archives_by_name_and_directory_links_followed_once(tmp_path):
  """A JPEG that ends in zip bytes stays a photo; a broken .zip is reported
  and passed over; a linked class folder is read, a link loop reported."""
  clinic = tmp_path / 'clinic'
  image_trees.write_class_tree(str(clinic), {'': {'Ringworm': 10, 'Hives': 10}})
  polyglot = image_trees.encode(image_trees.photo(99)) + (
      b'PK\x05\x06' + bytes(18))  # the end record of an empty zip
  image_trees.write(str(clinic / 'Hives' / 'polyglot.jpg'), polyglot)
  image_trees.write(str(clinic / 'Hives' / 'broken.zip'), b'PK\x03\x04junk')
  image_trees.write_class_tree(str(tmp_path / 'elsewhere'), {'': {'Eczema': 5}},
                               seed=100)
  os.symlink(tmp_path / 'elsewhere' / 'Eczema', clinic / 'Eczema')
  os.symlink(clinic, clinic / 'Ringworm' / 'loop')
  builder = _prepare('image_folder/clinic', tmp_path / 'tfds', clinic)
  assert builder.info.features['label'].names == ['Eczema', 'Hives',
                                                  'Ringworm']
  report = _report(builder)
  assert report['class_counts']['train']['Eczema'] + sum(
      report['class_counts'][s]['Eczema'] for s in ('validation', 'test')) == 5
  assert sum(report['examples'].values()) == 10 + 11 + 5
  reasons = {os.path.basename(s['file']): s['reason']
             for s in report['files_not_listed']}
  assert reasons['broken.zip'].startswith('broken zip archive')
  assert reasons['loop'].startswith('link loop')
  assert not report['skipped']


def test_train_names_a_missing_collection_in_one_line(tmp_path):
  result = run_module('skinjax.train', [
      '--config', 'configs/ham10000.py', '--workdir', str(tmp_path / 'run'),
      f'--config.dataset.data_dir={tmp_path / "tfds"}',
      f'--config.dataset.manual_dir={tmp_path / "nowhere"}'])
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert result.returncode == 1
  assert lines[-1] == (f"error: dataset.manual_dir {tmp_path / 'nowhere'} "
                       'does not exist')
