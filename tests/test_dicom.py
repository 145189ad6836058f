"""DICOM in and out: colour photographs stored as DICOM are scored like
photos, frame by frame; everything else is refused in one line before its
pixels are decoded; results come back as Structured Reports that reference
the instance; and the patient's data reaches no output but the report."""

import base64
import io
import json
import os
import pathlib
import shutil
import subprocess

import numpy as np
from PIL import Image
import pytest
from pydicom import uid

import dicom_files
from dicom_files import BIRTH_DATE, PATIENT_ID, PATIENT_NAME
from helpers import SERVICE_TOKEN, run_module
from skinjax.dicom import captures
from skinjax.dicom import loading
from skinjax.dicom import reading
from skinjax.dicom import reports
from skinjax.evaluation import image_dir
from skinjax.inference import photo_files
from skinjax.inference import preparation
from skinjax.service import client as client_lib

# Patient data as it may appear in a file written or a line printed.
_PATIENT = (PATIENT_NAME, PATIENT_NAME.replace('^', ' '),
            PATIENT_NAME.split('^')[0], PATIENT_ID, BIRTH_DATE)


def _recipe(max_pixels=50_000_000):
  return preparation.Recipe(max_short_side=256, jpeg_quality=90,
                            max_image_pixels=max_pixels, image_size=32,
                            crop_fraction=1.0)


def _pixels(jpeg: bytes) -> np.ndarray:
  return np.asarray(Image.open(io.BytesIO(jpeg)), np.float64)


def _refusal(ds, max_pixels=50_000_000) -> str:
  with pytest.raises(reading.DicomRefused) as refused:
    loading.frames(dicom_files.to_bytes(ds), 'x.dcm', _recipe(max_pixels))
  message = str(refused.value)
  assert '\n' not in message
  assert not any(p in message for p in _PATIENT)
  return message


def _assert_no_patient_data(text: str, where: str) -> None:
  found = [p for p in _PATIENT if p in text]
  assert not found, f'{found} in {where}'


@pytest.mark.parametrize('encoding', ['raw', 'jpeg', 'j2k'])
def test_each_frame_becomes_the_photo_it_holds(encoding):
  """Uncompressed RGB, JPEG baseline in YBR_FULL_422 and JPEG 2000, in a
  multi-frame instance: each frame is normalised as the same photo stored
  as a PNG file is (lossy JPEG a little apart), and named by its number."""
  if encoding == 'j2k':
    from pydicom.pixels import get_decoder  # pylint: disable=g-import-not-at-top
    if not get_decoder(uid.JPEG2000Lossless).is_available:
      pytest.skip('no JPEG 2000 decoder installed')
  sources = [dicom_files.photo(1), dicom_files.photo(5)]
  ds = dicom_files.dataset(np.stack(sources), encoding=encoding,
                           sop_class=uid.MultiFrameTrueColorSecondaryCaptureImageStorage)
  frames = loading.frames(dicom_files.to_bytes(ds), 'a.dcm', _recipe())
  assert [f.label for f in frames] == ['a.dcm#frame1', 'a.dcm#frame2']
  assert [f.reference['frame'] for f in frames] == [1, 2]
  assert frames[0].reference['sop_instance_uid'] == ds.SOPInstanceUID
  assert frames[0].reference['study_instance_uid'] == ds.StudyInstanceUID
  for frame, source in zip(frames, sources):
    png = io.BytesIO()
    Image.fromarray(source).save(png, 'PNG')
    as_photo = _pixels(_recipe().normalise(png.getvalue()))
    difference = np.abs(_pixels(frame.jpeg) - as_photo).mean()
    assert difference < (6 if encoding == 'jpeg' else 1e-9), difference
    # A colour space read wrongly moves the mean colour by tens.
    assert np.abs(_pixels(frame.jpeg).mean((0, 1)) - as_photo.mean((0, 1))).max() < 2
  assert np.abs(_pixels(frames[0].jpeg) - _pixels(frames[1].jpeg)).mean() > 5


def test_a_single_frame_keeps_its_file_name():
  frames = loading.frames(dicom_files.to_bytes(dicom_files.dataset(
      dicom_files.photo(2), sop_class=uid.DermoscopicPhotographyImageStorage)),
      'b.dcm', _recipe())
  assert [f.label for f in frames] == ['b.dcm']


def test_what_is_not_a_colour_photograph_is_refused_in_one_line():
  photo = dicom_files.photo(0)
  assert 'CT Image Storage instance, not a photograph' in _refusal(
      dicom_files.dataset(photo, sop_class=uid.CTImageStorage,
                          photometric='MONOCHROME2', samples=1))
  assert 'MONOCHROME2' in _refusal(dicom_files.dataset(
      photo, photometric='MONOCHROME2', samples=1))
  assert 'Encapsulated PDF Storage' in _refusal(dicom_files.dataset(
      photo, sop_class=uid.EncapsulatedPDFStorage, pixels=False))
  no_pixels = dicom_files.dataset(photo)
  del no_pixels.PixelData
  assert _refusal(no_pixels) == 'no pixel data'
  with pytest.raises(reading.DicomRefused, match='not a readable DICOM'):
    loading.frames(b'a text file named .dcm' * 10, 'c.dcm', _recipe())
  with pytest.raises(reading.DicomRefused, match='no SOP Class UID'):
    loading.frames(b'\0' * 128 + b'DICM' + b'\xff' * 64, 'c', _recipe())


def test_a_bomb_is_refused_from_its_header_before_decoding():
  """Pixel data that would not decode (garbage) shows the refusal came
  first: a frame over max_image_pixels, compressed data declaring more than
  100 times its size, uncompressed data shorter than declared."""
  huge = dicom_files.dataset(dicom_files.photo(0))
  huge.Rows, huge.Columns = 3000, 4000
  assert 'too many pixels in each frame: 4000x3000 = 12.0 Mpx' in _refusal(
      huge, max_pixels=10_000_000)
  bomb = dicom_files.dataset(dicom_files.photo(0), encoding='jpeg')
  bomb.Rows, bomb.Columns = 2000, 2000
  assert 'more than 100 times: refused undecoded' in _refusal(bomb)
  short = dicom_files.dataset(dicom_files.photo(0))
  short.NumberOfFrames = 3
  assert 'less than its 3 frame(s)' in _refusal(short)


def test_folders_are_searched_for_dicom_files(tmp_path):
  """A .dcm suffix or none with the DICM preamble; a suffix-less file
  without it is passed over, as a folder's other files are."""
  data = dicom_files.to_bytes(dicom_files.dataset(dicom_files.photo(0)))
  (tmp_path / 'sub').mkdir()
  (tmp_path / 'a.dcm').write_bytes(data)
  (tmp_path / 'sub' / 'IM000001').write_bytes(data)
  (tmp_path / 'sub' / 'README').write_text('not a photo')
  found = photo_files.expand_paths([str(tmp_path)])
  assert sorted(os.path.relpath(p, tmp_path) for p in found) == [
      'a.dcm', 'sub/IM000001']
  frames = {}
  loaded, failed = photo_files.load_images(found, _recipe(), frames)
  assert [p for p, _ in loaded] == found and not failed
  assert set(frames) == set(found)


def test_image_dir_scores_each_frame_and_skips_refused_instances(tmp_path):
  (tmp_path / 'melanoma').mkdir()
  dicom_files.write(tmp_path / 'melanoma' / 'two.dcm', dicom_files.dataset(
      np.stack([dicom_files.photo(1), dicom_files.photo(2)]),
      encoding='jpeg'))
  dicom_files.write(tmp_path / 'melanoma' / 'ct', dicom_files.dataset(
      dicom_files.photo(1), sop_class=uid.CTImageStorage,
      photometric='MONOCHROME2', samples=1))
  examples, report = image_dir.load_tree(str(tmp_path), ['Melanoma'],
                                         _recipe())
  assert [e['id'] for e in examples] == ['melanoma/two.dcm#frame1',
                                         'melanoma/two.dcm#frame2']
  assert len(report['skipped']) == 1
  assert 'CT Image Storage' in report['skipped'][0]['reason']
  _assert_no_patient_data(json.dumps(report), 'the image_dir report')


class _Checkpoint:
  """What reports.algorithm reads of a restored checkpoint."""
  step = 1500

  class calibration:  # pylint: disable=invalid-name
    weights = 'raw'
    params_digest = 'f00dfeed' * 8


def _report(instance, rows):
  model = reports.algorithm('resnet18', _Checkpoint)
  return reports.to_bytes(reports.structured_report(
      instance, list(enumerate(rows, 1)), model))


def _content(item, found=None) -> list:
  """Every content item of an SR tree, flattened."""
  found = [] if found is None else found
  for child in item.get('ContentSequence', []):
    found.append(child)
    _content(child, found)
  return found


def test_the_report_references_its_instance_and_holds_the_results():
  ds = dicom_files.dataset(
      np.stack([dicom_files.photo(1), dicom_files.photo(2)]),
      sop_class=uid.MultiFrameTrueColorSecondaryCaptureImageStorage)
  instance = reading.parse(dicom_files.to_bytes(ds), 50_000_000)
  rows = [{'differential': [('melanoma', 0.7), ('nevus', 0.2)],
           'uncertain': False, 'unfamiliar': None, 'skin_tone': 'tan',
           'ita': 15.5},
          {'differential': [('nevus', 0.5), ('melanoma', 0.4)],
           'uncertain': True, 'unfamiliar': True, 'skin_tone': None,
           'ita': None, 'quality': {'flagged': True, 'reasons': ['blurred'],
                                    'message': 'blurred'}}]
  sr = dicom_files.read(_report(instance, rows))
  assert sr.SOPClassUID == uid.ComprehensiveSRStorage
  assert sr.StudyInstanceUID == ds.StudyInstanceUID
  assert sr.SeriesInstanceUID != ds.SeriesInstanceUID
  assert (sr.PatientName, sr.PatientID) == (PATIENT_NAME, PATIENT_ID)
  evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
  assert evidence.StudyInstanceUID == ds.StudyInstanceUID
  referenced = evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
  assert (referenced.ReferencedSOPClassUID,
          referenced.ReferencedSOPInstanceUID) == (ds.SOPClassUID,
                                                   ds.SOPInstanceUID)
  items = _content(sr)
  probabilities = [(i.ConceptNameCodeSequence[0].CodeMeaning,
                    float(i.MeasuredValueSequence[0].NumericValue))
                   for i in items if i.ValueType == 'NUM']
  assert probabilities == [
      ('Probability of melanoma', 0.7), ('Probability of nevus', 0.2),
      ('Individual typology angle', 15.5), ('Probability of nevus', 0.5),
      ('Probability of melanoma', 0.4)]
  evaluations = [(i.ConceptNameCodeSequence[0].CodeValue,
                  i.ConceptCodeSequence[0].CodeMeaning)
                 for i in items if i.ValueType == 'CODE']
  for flag in [('uncertain', 'No'), ('unfamiliar', 'Not measured'),
               ('quality-flagged', 'Not measured'), ('uncertain', 'Yes'),
               ('unfamiliar', 'Yes'), ('quality-flagged', 'Yes'),
               ('quality-reason', 'blurred'), ('skin-tone', 'tan'),
               ('skin-tone', 'Not measured')]:
    assert flag in evaluations, flag
  frames = [i.ReferencedSOPSequence[0].ReferencedFrameNumber
            for i in items if i.ValueType == 'IMAGE']
  assert frames == [1, 2]
  texts = ' '.join(str(i.get('TextValue', '')) for i in items)
  assert 'not a diagnosis' in texts
  parameters = ' '.join(str(i.get('TextValue', '')) for i in items
                        if i.ValueType == 'TEXT')
  assert 'checkpoint_step=1500' in parameters
  assert 'params_digest=' + 'f00dfeed' * 8 in parameters
  assert 'skinjax resnet18' in texts


def test_the_report_passes_dciodvfy(tmp_path):
  """Skipped where dicom3tools is not installed, except in CI (.ci/run
  installs it)."""
  if shutil.which('dciodvfy') is None:
    if os.environ.get('CI'):
      pytest.fail("dciodvfy is missing in CI: apt-get install dicom3tools")
    pytest.skip("dicom3tools' dciodvfy is not installed")
  ds = dicom_files.dataset(
      np.stack([dicom_files.photo(1), dicom_files.photo(2)]),
      sop_class=uid.MultiFrameTrueColorSecondaryCaptureImageStorage)
  instance = reading.parse(dicom_files.to_bytes(ds), 50_000_000)
  row = {'differential': [('melanoma', 0.7)], 'uncertain': False,
         'unfamiliar': False, 'skin_tone': 'tan', 'ita': 15.5}
  overlay = io.BytesIO()
  Image.fromarray(dicom_files.photo(3)).save(overlay, 'PNG')
  for kind, data in [('ComprehensiveSR', _report(instance, [row, row])),
                     ('SCImage', reports.to_bytes(captures.grad_cam_capture(
                         instance, 2, overlay.getvalue())))]:
    path = tmp_path / f'{kind}.dcm'
    path.write_bytes(data)
    result = subprocess.run(['dciodvfy', str(path)], capture_output=True,
                            text=True, check=False)
    output = result.stdout + result.stderr
    assert kind in output
    errors = [line for line in output.splitlines()
              if line.startswith('Error')]
    assert not errors, output


def _instances() -> dict:
  """The DICOM files the command and service tests send, by file name."""
  multi = uid.MultiFrameTrueColorSecondaryCaptureImageStorage
  return {name: dicom_files.to_bytes(ds) for name, ds in {
      'rgb.dcm': dicom_files.dataset(dicom_files.photo(1)),
      'IM000002': dicom_files.dataset(
          dicom_files.photo(3),
          sop_class=uid.DermoscopicPhotographyImageStorage, encoding='jpeg'),
      'multi.dcm': dicom_files.dataset(np.stack(
          [dicom_files.photo(4), dicom_files.photo(5)]), sop_class=multi,
          encoding='jpeg'),
      'ct.dcm': dicom_files.dataset(dicom_files.photo(1),
                                    sop_class=uid.CTImageStorage,
                                    photometric='MONOCHROME2', samples=1),
  }.items()}


def _png(seed) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(dicom_files.photo(seed)).save(buffer, 'PNG')
  return buffer.getvalue()


def _assert_report_of(sr_bytes: bytes, instance: bytes, frames: int) -> None:
  sr, source = dicom_files.read(sr_bytes), dicom_files.read(instance)
  assert sr.StudyInstanceUID == source.StudyInstanceUID
  assert sr.PatientID == PATIENT_ID  # for the PACS that files it
  images = [i for i in _content(sr) if i.ValueType == 'IMAGE']
  assert len(images) == frames
  assert {i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
          for i in images} == {source.SOPInstanceUID}


def test_predict_scores_dicom_files_and_writes_reports(trained_run, tmp_path):
  """A folder of photos and DICOM files: every frame scored, the CT
  refused in one line, a report per instance beside results.json, and the
  patient's name, ID and birth date in nothing but the reports."""
  workdir, _ = trained_run
  instances = _instances()
  for name, data in instances.items():
    (tmp_path / 'in').mkdir(exist_ok=True)
    (tmp_path / 'in' / name).write_bytes(data)
  (tmp_path / 'in' / 'photo.png').write_bytes(_png(1))
  output = tmp_path / 'results'
  result = run_module('skinjax.predict', [
      '--workdir', str(workdir), '--output', f'{output}/',
      '--saliency', str(tmp_path / 'overlays'), str(tmp_path / 'in')])
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'Traceback' not in result.stderr
  refused = [line for line in result.stderr.splitlines() if 'ct.dcm' in line]
  assert len(refused) == 1 and 'CT Image Storage instance' in refused[0]
  rows = json.loads((output / 'results.json').read_text())
  by_file = {os.path.basename(r['file']): r for r in rows}
  assert sorted(by_file) == ['IM000002', 'multi.dcm#frame1',
                             'multi.dcm#frame2', 'photo.png', 'rgb.dcm']
  assert 'dicom' not in by_file['photo.png']
  source = dicom_files.read(instances['multi.dcm'])
  assert by_file['multi.dcm#frame2']['dicom'] == {
      'sop_class_uid': source.SOPClassUID,
      'sop_instance_uid': source.SOPInstanceUID,
      'study_instance_uid': source.StudyInstanceUID,
      'series_instance_uid': source.SeriesInstanceUID, 'frame': 2}
  # The same photo as a PNG file and as uncompressed DICOM: the same input.
  assert by_file['rgb.dcm']['differential'] == by_file['photo.png'][
      'differential']
  reports_written = sorted(p.name for p in output.glob('sr_*.dcm'))
  assert len(reports_written) == 3
  for name, frames in [('rgb.dcm', 1), ('IM000002', 1), ('multi.dcm', 2)]:
    uid_ = dicom_files.read(instances[name]).SOPInstanceUID
    _assert_report_of((output / f'sr_{uid_}.dcm').read_bytes(),
                      instances[name], frames)
  # Grad-CAM: a Secondary Capture of each DICOM frame in its study.
  multi = dicom_files.read(instances['multi.dcm'])
  capture = dicom_files.read((
      output / f'gradcam_{multi.SOPInstanceUID}_2.dcm').read_bytes())
  assert capture.StudyInstanceUID == multi.StudyInstanceUID
  assert capture.SourceImageSequence[0].ReferencedFrameNumber == 2
  assert len(list(output.glob('gradcam_*.dcm'))) == 4
  _assert_no_patient_data(result.stdout + result.stderr, 'predict output')
  # Every file written but the DICOM ones, which carry the patient module
  # for the PACS that files them.
  written = [p for p in [*output.rglob('*'), *(tmp_path / 'overlays').rglob(
      '*')] if p.is_file() and p.suffix != '.dcm']
  assert len(written) == 6  # results.json and five overlays
  for path in written:
    _assert_no_patient_data(path.read_bytes().decode('latin-1'), str(path))


def test_the_service_scores_dicom_and_takes_stow_rs(service,
                                                    tmp_path_factory):
  """POST /v1/predict takes DICOM files beside photos; POST
  /dicomweb/studies takes a STOW-RS request, answering per instance; the
  service's answers (but the reports) and its log hold no patient data."""
  url, _ = service
  client = client_lib.Client(url, SERVICE_TOKEN, timeout=60)
  instances = _instances()
  bodies = []
  status, body = client.request('POST', '/v1/predict?report=dicom',
                                *_form([('rgb.dcm', instances['rgb.dcm']),
                                        ('photo.png', _png(1)),
                                        ('multi.dcm', instances['multi.dcm'])]))
  assert status == 200, body
  bodies.append(body)
  assert [r['file'] for r in body['photos']] == [
      'rgb.dcm', 'photo.png', 'multi.dcm#frame1', 'multi.dcm#frame2']
  np.testing.assert_allclose(
      [p for _, p in body['photos'][0]['differential']],
      [p for _, p in body['photos'][1]['differential']], rtol=1e-5)
  assert [r.get('dicom', {}).get('frame') for r in body['photos']] == [
      1, None, 1, 2]
  assert [r['photo'] for r in body['dicom_reports']] == [1, 3]
  _assert_report_of(base64.b64decode(body['dicom_reports'][1]['sr_base64']),
                    instances['multi.dcm'], 2)

  status, body = client.request(
      'POST', '/v1/predict?report=dicom&grad_cam=true',
      *_form([('multi.dcm', instances['multi.dcm'])]))
  assert status == 200, body
  captured = body['dicom_reports'][0]['grad_cam_captures']
  assert [c['frame'] for c in captured] == [1, 2]
  capture = dicom_files.read(base64.b64decode(captured[1]['sc_base64']))
  source = dicom_files.read(instances['multi.dcm'])
  assert capture.SOPClassUID == uid.SecondaryCaptureImageStorage
  assert capture.StudyInstanceUID == source.StudyInstanceUID
  assert (capture.SourceImageSequence[0].ReferencedSOPInstanceUID,
          capture.SourceImageSequence[0].ReferencedFrameNumber) == (
              source.SOPInstanceUID, 2)
  assert capture.pixel_array.shape[-1] == 3
  for report in body['dicom_reports']:
    report.pop('sr_base64')
    report.pop('grad_cam_captures')
  for row in body['photos']:
    row.pop('grad_cam_png')
  bodies.append(body)

  status, body = client.request('POST', '/v1/predict',
                                *_form([('ct.dcm', instances['ct.dcm'])]))
  assert status == 422 and body['error'].startswith(
      'photo 1 (ct.dcm): a CT Image Storage instance'), body
  bodies.append(body)

  status, body = client.stow([instances['rgb.dcm'], instances['ct.dcm'],
                              instances['multi.dcm'], _png(2)], report=True)
  assert status == 202, body
  bodies.append(body)
  scored, ct, multi, png = body['instances']
  assert scored['status'] == 'scored' and len(scored['frames']) == 1
  assert scored['sop_instance_uid'] == dicom_files.read(
      instances['rgb.dcm']).SOPInstanceUID
  assert ct['status'] == 'failed' and 'CT Image Storage' in ct['reason']
  assert ct['sop_instance_uid'] == dicom_files.read(
      instances['ct.dcm']).SOPInstanceUID
  assert [f['file'] for f in multi['frames']] == ['instance 3#frame1',
                                                  'instance 3#frame2']
  _assert_report_of(base64.b64decode(multi['sr_base64']),
                    instances['multi.dcm'], 2)
  assert png['status'] == 'failed' and 'not a DICOM file' in png['reason']

  status, body = client.stow([instances['ct.dcm']])
  assert status == 409 and body['instances'][0]['status'] == 'failed'
  bodies.append(body)
  # The request's pixel budget counts every frame a header declares.
  bomb = dicom_files.dataset(dicom_files.photo(0), encoding='jpeg')
  bomb.Rows, bomb.Columns, bomb.NumberOfFrames = 5000, 5000, 20
  status, body = client.stow([dicom_files.to_bytes(bomb)])
  assert status == 413 and 'serve.max_request_pixels' in body['error'], body
  status, body = client.request('POST', '/dicomweb/studies',
                                *_form([('rgb.dcm', instances['rgb.dcm'])]))
  assert status == 415, body
  status, _ = client_lib.Client(url, timeout=60).stow([instances['rgb.dcm']])
  assert status == 401

  for report in bodies[0]['dicom_reports'] + bodies[3]['instances']:
    report.pop('sr_base64', None)
  _assert_no_patient_data(json.dumps(bodies), 'the answers')
  logs = list(pathlib.Path(tmp_path_factory.getbasetemp()).glob(
      'service*/service.log'))
  assert logs
  for log in logs:
    _assert_no_patient_data(log.read_text(), str(log))


def _form(photos) -> tuple:
  body, content_type = client_lib.multipart(photos)
  return body, {'Content-Type': content_type}


@pytest.mark.slow  # an evaluate run: the default tier's budget
def test_evaluate_image_dir_scores_dicom_without_patient_data(trained_run,
                                                              tmp_path):
  """Class folders of DICOM files: every frame an example, the refused
  instance reported, and the patient's data in no file evaluate writes
  (the eval folder, metrics.jsonl, the offline W&B run) nor its output."""
  workdir, flags = trained_run
  names = json.loads((workdir / 'class_names.json').read_text())
  multi = uid.MultiFrameTrueColorSecondaryCaptureImageStorage
  for i, name in enumerate(names[:2]):
    folder = tmp_path / 'clinic' / name
    folder.mkdir(parents=True)
    dicom_files.write(folder / 'two.dcm', dicom_files.dataset(np.stack(
        [dicom_files.photo(i), dicom_files.photo(i + 2)]), sop_class=multi,
        encoding='jpeg'))
    dicom_files.write(folder / 'IM0001', dicom_files.dataset(
        dicom_files.photo(i + 4)))
  dicom_files.write(tmp_path / 'clinic' / names[0] / 'ct.dcm',
                    dicom_files.dataset(dicom_files.photo(0),
                                        sop_class=uid.CTImageStorage,
                                        photometric='MONOCHROME2', samples=1))
  before = {p for p in workdir.rglob('*') if p.is_file()}
  stamp = {p: p.stat().st_mtime_ns for p in before}
  result = run_module('skinjax.evaluate', [
      '--workdir', str(workdir), '--image_dir', str(tmp_path / 'clinic')])
  assert result.returncode == 0, result.stderr[-3000:]
  metrics = json.loads(
      (workdir / 'eval' / 'dir_clinic' / 'metrics.json').read_text())
  assert metrics['num_examples'] == 6
  assert len(metrics['image_dir']['skipped']) == 1
  assert 'CT Image Storage' in metrics['image_dir']['skipped'][0]['reason']
  _assert_no_patient_data(result.stdout + result.stderr, 'evaluate output')
  written = [p for p in workdir.rglob('*') if p.is_file() and (
      p not in before or p.stat().st_mtime_ns != stamp[p])]
  assert any('dir_clinic' in str(p) for p in written)
  for path in written:
    _assert_no_patient_data(path.read_bytes().decode('latin-1'), str(path))
