"""A Grad-CAM overlay as a DICOM Secondary Capture in the source's study,
so that a PACS viewer shows where the model looked beside the photo.

Secondary Capture (highdicom's SCImage) is the IOD for an image made by
software from another: DERIVED, its source image and frame referenced, its
patient and study modules copied from the source (patient data: never
logged), in a series of its own that says it is decision support.
"""

import io
import os

import numpy as np
from PIL import Image

try:
  import highdicom
  from pydicom.dataset import Dataset
except ImportError:  # no `dicom` extra: reading refuses every DICOM file
  highdicom = Dataset = None

from skinjax.dicom import reading
from skinjax.dicom import reports

SERIES_NUMBER = 9002


def grad_cam_capture(instance: reading.Instance, frame: int, png: bytes):
  """The capture (a pydicom Dataset) of the overlay `png` (saliency's
  figure) of frame `frame` of `instance`."""
  pixels = np.asarray(Image.open(io.BytesIO(png)).convert('RGB'))
  capture = highdicom.sc.SCImage.from_ref_dataset(
      ref_dataset=instance.dataset, pixel_array=pixels,
      photometric_interpretation='RGB', bits_allocated=8,
      coordinate_system='PATIENT', series_instance_uid=highdicom.UID(),
      series_number=SERIES_NUMBER, sop_instance_uid=highdicom.UID(),
      instance_number=frame, manufacturer='skinjax',
      patient_orientation=('L', 'F'))
  capture.ImageType = ['DERIVED', 'SECONDARY']
  # The source's side of the body, or empty (unknown), as General Series
  # asks of a paired body part.
  capture.Laterality = instance.dataset.get('Laterality', '')
  capture.SeriesDescription = 'skinjax Grad-CAM (decision support)'
  capture.DerivationDescription = (
      f'Grad-CAM of the top class of frame {frame}, by skinjax; '
      + reports.NOTICE)[:1024]
  source = Dataset()
  source.ReferencedSOPClassUID = instance.sop_class_uid
  source.ReferencedSOPInstanceUID = instance.sop_instance_uid
  if instance.frames > 1:
    source.ReferencedFrameNumber = frame
  capture.SourceImageSequence = [source]
  return capture


def write_captures(folder: str, rows, frames: dict, overlays) -> int:
  """The capture of each DICOM frame's overlay (`overlays`: PNG files in
  the order of `rows`; `frames`: {label: loading.Frame}) into `folder`, as
  gradcam_<SOP Instance UID>_<frame>.dcm; how many."""
  written = 0
  for row, overlay in zip(rows, overlays, strict=True):
    frame = frames.get(row['file'])
    if frame is None:
      continue
    with open(overlay, 'rb') as f:
      capture = grad_cam_capture(frame.instance, frame.number, f.read())
    name = f'gradcam_{frame.instance.sop_instance_uid}_{frame.number}.dcm'
    with open(os.path.join(folder, name), 'wb') as f:
      f.write(reports.to_bytes(capture))
    written += 1
  return written
