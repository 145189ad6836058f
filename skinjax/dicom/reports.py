"""A DICOM Structured Report of an instance's results, for the PACS that
sent it: the ranked differential with calibrated probabilities, the
uncertain, unfamiliar and quality flags and the skin tone of each frame,
which model said so, and that it supports a clinician and does not replace
one.

Template: TID 1500 Measurement Report (highdicom's MeasurementReport) in a
Comprehensive SR. It is the template PACS viewers and archives already read
for algorithm results: one Measurement Group (TID 1501) per frame, with the
source image and frame (its SOP Class and Instance UIDs), each probability a
numeric Measurement (unit 1, in ranked order), each flag a Qualitative
Evaluation (SNOMED Yes or No, or 'not measured'), and the model in the
group's Algorithm Identification (TID 4019: name, skinjax version, checkpoint
step, weights and parameters digest). Classes, flags and skin tones are
codes of skinjax's private scheme 99SKINJAX (no standard code exists for a
model's classes). The clinician notice is a TEXT Comment at the root, an
extension of TID 1500 that the Comprehensive SR IOD allows.

The report joins the source's study (same Study Instance UID, patient and
study modules copied, as a PACS files it) in a new series. Nothing here
logs or prints: the report itself is patient data.
"""

import importlib.metadata
import io
import os

try:
  import highdicom
  from highdicom import sr
  from pydicom.sr.codedict import codes
except ImportError:  # no `dicom` extra: reading refuses every DICOM file
  highdicom = sr = codes = None

from skinjax.dicom import reading

SCHEME = '99SKINJAX'
NOTICE = ('Decision support for a clinician, not a diagnosis: a ranked '
          'differential over the classes this model was trained on, with '
          'probabilities calibrated on its validation photos.')
NOT_MEASURED = ('not-measured', 'Not measured')


def skinjax_version() -> str:
  try:
    return importlib.metadata.version('skinjax')
  except importlib.metadata.PackageNotFoundError:
    return 'unknown'


def algorithm(model_name: str, checkpoint) -> dict:
  """Who made the results: the model, skinjax's version and the checkpoint
  (restore.Checkpoint: its step, weights and parameters digest)."""
  calibration = checkpoint.calibration
  return {'model': model_name, 'skinjax': skinjax_version(),
          'checkpoint_step': int(checkpoint.step),
          'weights': calibration.weights,
          'params_digest': calibration.params_digest}


def _code(value: str, meaning: str):
  return sr.CodedConcept(value, SCHEME, meaning[:64])


def _yes_no(flag):
  if flag is None:
    return _code(*NOT_MEASURED)
  return codes.SCT.Yes if flag else codes.SCT.No


def _evaluations(row: dict) -> list:
  """The flags of one frame's row as Qualitative Evaluations."""
  evaluation = sr.QualitativeEvaluation
  quality = row.get('quality')
  evaluations = [
      evaluation(_code('uncertain', 'Uncertain: top probability below the '
                       'validated threshold'), _yes_no(row['uncertain'])),
      evaluation(_code('unfamiliar', 'Unfamiliar: unlike the training '
                       'photos'), _yes_no(row.get('unfamiliar'))),
      evaluation(_code('quality-flagged', 'Photo quality flagged'),
                 _yes_no(None if quality is None else
                         bool(quality.get('flagged'))))]
  for reason in (quality or {}).get('reasons') or []:
    evaluations.append(evaluation(
        _code('quality-reason', 'Photo quality problem'),
        _code(str(reason)[:16], str(reason).replace('_', ' '))))
  tone = row.get('skin_tone')
  evaluations.append(evaluation(
      _code('skin-tone', 'Skin tone (ITA group)'),
      _code(tone[:16], tone.replace('_', ' ')) if tone else _code(
          *NOT_MEASURED)))
  return evaluations


def _measurements(row: dict) -> list:
  """The ranked differential (and the ITA angle) as Measurements."""
  measurements = [sr.Measurement(_code(name, f'Probability of {name}'),
                              float(p), codes.UCUM.NoUnits)
                  for name, p in row['differential']]
  if row.get('ita') is not None:
    measurements.append(sr.Measurement(
        _code('ita', 'Individual typology angle'), float(row['ita']),
        codes.UCUM.Degree))
  return measurements


def _group(instance: reading.Instance, frame: int, row: dict,
           algorithm_id):
  source = sr.SourceImageForMeasurementGroup(
      instance.sop_class_uid, instance.sop_instance_uid,
      referenced_frame_numbers=[frame] if instance.frames > 1 else None)
  return sr.MeasurementsAndQualitativeEvaluations(
      tracking_identifier=sr.TrackingIdentifier(
          uid=highdicom.UID(), identifier=f'frame {frame}'),
      algorithm_id=algorithm_id, measurements=_measurements(row),
      qualitative_evaluations=_evaluations(row), source_images=[source])


def structured_report(instance: reading.Instance, frames, model: dict):
  """The report (a pydicom Dataset) of `frames`, [(frame number, result
  row)] of `instance`, by `model` (algorithm())."""
  algorithm_id = sr.AlgorithmIdentification(
      name=f"skinjax {model['model']}"[:64], version=model['skinjax'],
      parameters=[f"checkpoint_step={model['checkpoint_step']}",
                  f"weights={model['weights']}",
                  f"params_digest={model['params_digest']}"])
  device = sr.ObserverContext(
      observer_type=codes.DCM.Device,
      observer_identifying_attributes=sr.DeviceObserverIdentifyingAttributes(
          uid=highdicom.UID(), name='skinjax', manufacturer_name='skinjax',
          model_name=str(model['model'])[:64]))
  report = sr.MeasurementReport(
      observation_context=sr.ObservationContext(
          observer_device_context=device),
      procedure_reported=_code('skin-photo-model',
                               'Skin photograph classification by a model'),
      imaging_measurements=[_group(instance, n, row, algorithm_id)
                            for n, row in frames])
  report[0].ContentSequence.append(sr.TextContentItem(
      codes.DCM.Comment, NOTICE, relationship_type='CONTAINS'))
  source = instance.dataset
  return sr.ComprehensiveSR(
      evidence=[source], content=report[0],
      series_instance_uid=highdicom.UID(), series_number=9001,
      sop_instance_uid=highdicom.UID(), instance_number=1,
      manufacturer='skinjax', series_description='skinjax differential '
      '(decision support)', is_complete=True)


def to_bytes(report) -> bytes:
  """The report as a DICOM Part 10 file."""
  buffer = io.BytesIO()
  report.save_as(buffer, enforce_file_format=True)
  return buffer.getvalue()


def by_instance(rows, frames: dict) -> list:
  """[(reading.Instance, [(frame number, row)])] of the result rows whose
  'file' is a DICOM frame in `frames` ({label: loading.Frame}), in order."""
  grouped = {}
  for row in rows:
    frame = frames.get(row['file'])
    if frame is not None:
      grouped.setdefault(frame.instance.sop_instance_uid, (
          frame.instance, []))[1].append((frame.number, row))
  return list(grouped.values())


def file_name(instance: reading.Instance) -> str:
  """The report's file name: the SOP Instance UID it reports on."""
  return f'sr_{instance.sop_instance_uid}.dcm'


def write_reports(folder: str, rows, frames: dict, model: dict) -> int:
  """A report per instance of `rows` into `folder`; how many."""
  groups = by_instance(rows, frames)
  for instance, instance_rows in groups:
    with open(os.path.join(folder, file_name(instance)), 'wb') as f:
      f.write(to_bytes(structured_report(instance, instance_rows, model)))
  return len(groups)
