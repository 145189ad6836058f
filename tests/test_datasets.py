"""Real-dataset builders, prepared from trees the tests write in each layout."""

import collections
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
from PIL import Image
import pytest

from helpers import REPO, dataset_config, run_module
import image_trees
from skinjax import data
from skinjax.config import defaults
from skinjax.data import pipeline
from skinjax.data import prepared_folders
from skinjax.data.builders import dermnet
from skinjax.data.prepare import collection
from skinjax.data.prepare import files
from skinjax.data.prepare import sources

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
  examples = report['examples']
  assert examples['train'] + examples['validation'] == 29
  assert examples['test'] == 7
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


def _carved(builder, from_tree=''):
  """(label, split) of every example, or with `from_tree` of those whose id
  starts with it: the examples splits were carved from."""
  return [(e['label'], split) for split in builder.info.splits
          for e in _examples(builder, split)
          if e['id'].decode().startswith(from_tree)]


def _within_tolerance(groups, fractions):
  """Every class's share of each carved split, counted in `groups` ((label,
  split) pairs, one per group), is within the tolerance splits.py states: 4
  binomial standard deviations of its fraction."""
  by_class = collections.defaultdict(collections.Counter)
  for label, split in groups:
    by_class[label][split] += 1
  for label, counts in by_class.items():
    total = sum(counts.values())
    for split, fraction in fractions.items():
      spread = (fraction * (1 - fraction) / total) ** 0.5
      deviation = abs(counts[split] / total - fraction) / spread
      assert deviation <= 4, (label, split, counts[split], total)


def test_validation_is_deterministic_nested_and_within_tolerance(
    dermnet_tree, tmp_path):
  first = _prepare('dermnet/23', tmp_path / 'a', dermnet_tree)
  again = _prepare('dermnet/23', tmp_path / 'b', dermnet_tree)
  ids = lambda b: {e['id'].decode() for e in _examples(b, 'validation')}
  assert ids(first) == ids(again) and ids(first)
  assert all(i.startswith('train/') for i in ids(first))  # carved from train
  _within_tolerance(_carved(first, 'train/'), {'validation': 0.1})
  other = _prepare('dermnet/23', tmp_path / 'c', dermnet_tree,
                   validation_fraction=0.3)
  assert other.builder_config.name == '23-val0.3'
  assert ids(first) < ids(other)  # a larger fraction only adds photos
  _within_tolerance(_carved(other, 'train/'), {'validation': 0.3})


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
  lesions = {(e['lesion_id'], e['label'], split)
             for split in ('train', 'validation', 'test')
             for e in _examples(builder, split)}
  _within_tolerance([(label, split) for _, label, split in lesions],
                    {'test': 0.2, 'validation': 0.1})


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
  assert sum(sizes.values()) == 24 if with_splits else 20
  if with_splits:  # the tree's test split stays; validation is carved
    assert sizes['test'] == 4
    _within_tolerance(_carved(builder, 'train/'), {'validation': 0.1})
  else:
    _within_tolerance(_carved(builder), {'test': 0.2, 'validation': 0.1})


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


def _add_photos(root, per_class, seed):
  """`per_class` new photos in every class folder of `root`."""
  for name in sorted(os.listdir(root)):
    for i in range(per_class):
      seed += 1
      image_trees.write(os.path.join(root, name, f'new_{seed}.jpg'),
                        image_trees.encode(image_trees.photo(seed)))


def _split_of_each_photo(builder):
  return {e['id'].decode(): split for split in builder.info.splits
          for e in _examples(builder, split)}


def test_added_photos_move_no_earlier_photo(tmp_path, capsys):
  """Done means: 10% more photos, re-prepared: every earlier photo stays in
  its split, and classes stay within the stated tolerance."""
  clinic = tmp_path / 'clinic'
  image_trees.write_class_tree(str(clinic), {'': {'Acne': 40, 'Eczema': 40,
                                                  'Hives': 40}})
  config = dataset_config('image_folder/clinic', tmp_path / 'tfds', clinic)
  before = _split_of_each_photo(data.load_builder(config))
  fractions = {'test': 0.2, 'validation': 0.1}
  _within_tolerance(_carved(data.load_builder(config)), fractions)
  _add_photos(str(clinic), 4, seed=1000)
  capsys.readouterr()
  builder = data.load_builder(config, reprepare=True)
  assert 'files 12 added; preparing it again.' in capsys.readouterr().out
  after = _split_of_each_photo(builder)
  assert len(after) == 132 and before.keys() < after.keys()
  moved = [i for i in before if after[i] != before[i]]
  assert not moved
  _within_tolerance(_carved(builder), fractions)


def test_a_changed_manual_dir_is_told_in_one_line_at_start(tmp_path, capsys):
  clinic = tmp_path / 'clinic'
  image_trees.write_class_tree(str(clinic), {'': {'Acne': 6, 'Hives': 6}})
  config = dataset_config('image_folder/clinic', tmp_path / 'tfds', clinic)
  data.load_builder(config)
  capsys.readouterr()
  data.load_builder(config)
  assert 'manual_dir' not in capsys.readouterr().err  # unchanged: silent
  _add_photos(str(clinic), 1, seed=500)
  os.remove(clinic / 'Acne' / 'img_0.jpg')
  image_trees.write(str(clinic / 'Hives' / 'img_0.jpg'),
                    image_trees.encode(image_trees.photo(777)))
  builder = data.load_builder(config)
  told = [line for line in capsys.readouterr().err.splitlines()
          if 'manual_dir' in line]
  assert told == [
      f'warning: dataset.manual_dir {clinic} has changed since '
      'image_folder/clinic was prepared from it: files 2 added, 1 removed, '
      '1 changed (size or time); using it as prepared (train with '
      'dataset.reprepare=True to prepare it again)']
  assert sum(s.num_examples for s in builder.info.splits.values()) == 12


def test_sources_of_an_archive_match_through_a_link(tmp_path):
  """A zip given as manual_dir is prepared through a link to it in a
  temporary folder; both name it alike, so a later start can compare."""
  image_trees.write_class_tree(str(tmp_path / 'tree'), {'': {'Acne': 2}})
  archive = shutil.make_archive(str(tmp_path / 'clinic'), 'zip',
                                root_dir=tmp_path / 'tree')
  (tmp_path / 'link').mkdir()
  os.symlink(archive, tmp_path / 'link' / 'clinic.zip')
  direct = sources.snapshot(archive, files.list_files(archive))
  linked = str(tmp_path / 'link')
  assert sources.snapshot(linked, files.list_files(linked)) == direct
  assert list(direct) == ['clinic.zip']


def test_a_bare_image_folder_is_refused(tmp_path):
  with pytest.raises(files.CollectionError,
                     match=r"config.dataset.name='image_folder': name the "
                     r"collection, e.g. 'image_folder/myclinic'"):
    data.get_builder(dataset_config('image_folder', tmp_path, tmp_path))


def _start_preparing(data_dir, manual_dir):
  return subprocess.Popen(
      [sys.executable, '-m', 'tests.prepare_collection', str(data_dir),
       str(manual_dir)], cwd=REPO, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True, start_new_session=True)


def _incomplete(folder):
  return sorted(folder.glob('incomplete.*')) if folder.exists() else []


def _wait_for_decoding(folder, proc):
  """Waits until a build has recorded its files (it decodes them next);
  returns its incomplete folder."""
  deadline = time.time() + 120
  while True:
    started = [p for p in _incomplete(folder)
               if (p / sources.RECORD_FILE).exists()]
    if started:
      return started[0]
    assert proc.poll() is None, proc.communicate()
    assert time.time() < deadline
    time.sleep(0.01)


def test_a_killed_preparation_is_redone_and_cleaned(tmp_path):
  """Done means: SIGKILL while preparing, then the same command: a complete
  dataset, and nothing of the killed build left."""
  clinic = tmp_path / 'clinic'
  image_trees.write_class_tree(str(clinic), {'': {'Acne': 30, 'Hives': 30}})
  folder = tmp_path / 'tfds' / 'image_folder' / 'clinic'
  proc = _start_preparing(tmp_path / 'tfds', clinic)
  killed = _wait_for_decoding(folder, proc)
  os.killpg(proc.pid, signal.SIGKILL)
  proc.wait()
  assert _incomplete(folder) == [killed]  # what tfds alone would leave
  again = _start_preparing(tmp_path / 'tfds', clinic)
  stdout, stderr = again.communicate(timeout=300)
  assert again.returncode == 0, stderr[-3000:]
  assert 'Removed 1 left-over incomplete preparation(s)' in stdout
  # A log file (here a pipe) gets no bar, no tfds warning of the folder not
  # prepared yet (test_progress checks the terminal side).
  assert '\r' not in stderr and 'Variant folder' not in stderr, stderr
  assert 'Downloading' not in stdout  # tfds's line; nothing is downloaded
  assert f"Prepared image_folder/clinic in {folder}" in stdout, stdout
  assert not _incomplete(folder)
  builder = data.get_builder(dataset_config('image_folder/clinic',
                                            tmp_path / 'tfds', clinic))
  labels = collections.Counter(label for label, _ in _carved(builder))
  assert labels == {0: 30, 1: 30}


def test_a_live_preparation_is_waited_for_not_removed(tmp_path):
  """While a live build holds a dataset (here this process, holding its lock
  and an incomplete folder), another waits and leaves its folder alone."""
  clinic = tmp_path / 'clinic'
  image_trees.write_class_tree(str(clinic), {'': {'Acne': 5, 'Hives': 5}})
  builder = data.get_builder(dataset_config('image_folder/clinic',
                                            tmp_path / 'tfds', clinic))
  live = tmp_path / 'tfds' / 'image_folder' / 'clinic' / (
      f'incomplete.LIVE00_{builder.version}')
  with prepared_folders.exclusive(builder):
    live.mkdir()
    proc = _start_preparing(tmp_path / 'tfds', clinic)
    assert proc.stdout.readline().startswith(
        'Waiting for another process preparing')
    assert live.is_dir()
  stdout, stderr = proc.communicate(timeout=300)
  assert proc.returncode == 0, stderr[-3000:]
  assert 'Removed 1 left-over' in stdout  # once its holder was gone
  assert not _incomplete(live.parent)


def test_every_builder_carries_its_citation_and_licence(tmp_path):
  """tfds's citation (BibTeX) and the licence in the description, as
  skinjax.provenance says; HAM10000's and DermNet's restrict commercial
  use."""
  expected = {
      'ham10000': ('Tschandl', 'CC BY-NC 4.0'),
      'dermnet/23': ('dermnetnz.org', 'copyrighted by DermNet'),
      'dermamnist/28': ('MedMNIST', 'CC BY-NC 4.0'),
      'synthetic_lesions/small': ('synthetic', 'Apache-2.0'),
      'image_folder/clinic': (None, 'consent and licence'),
  }
  assert {name.partition('/')[0] for name in expected} == set(data.DATASETS)
  for name, (cited, licence) in expected.items():
    info = data.get_builder(dataset_config(name, tmp_path)).info
    text = ' '.join(info.description.split())
    assert 'Licence: ' in text and licence in text.split('Licence: ')[1], name
    if cited:
      assert info.citation.startswith('@') and cited in info.citation, name
  ham = data.get_builder(dataset_config('ham10000', tmp_path)).info.citation
  assert '180161' in ham and '10.1038/sdata.2018.161' in ham
