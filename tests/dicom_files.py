"""DICOM files made with pydicom for the tests: colour photographs as
cameras and dermatoscopes store them, and the kinds skinjax must refuse."""

import io

import numpy as np
from PIL import Image
import pydicom
from pydicom import uid
from pydicom.dataset import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom import encaps

PATIENT_NAME = 'Zyxwvut^Quibblesworth'
PATIENT_ID = 'PID-93817264'
BIRTH_DATE = '19230917'


def photo(seed=0, size=(48, 64)) -> np.ndarray:
  """An RGB uint8 image: a reddish disc on a skin-coloured ground."""
  rng = np.random.default_rng(seed)
  h, w = size
  y, x = np.mgrid[:h, :w]
  image = np.empty((h, w, 3), np.uint8)
  image[:] = (210, 160, 130)
  disc = (y - h / 2) ** 2 + (x - w / 2) ** 2 < (min(h, w) / 3) ** 2
  image[disc] = (120 + seed * 10 % 100, 50, 60)
  return np.clip(image + rng.integers(-8, 8, image.shape), 0, 255).astype(
      np.uint8)


def _encoded(frame: np.ndarray, fmt: str) -> bytes:
  buffer = io.BytesIO()
  image = Image.fromarray(frame, 'RGB')
  if fmt == 'jpeg':  # 4:2:2 chroma, as YBR_FULL_422 says
    image.save(buffer, 'JPEG', quality=95, subsampling=1)
  else:
    image.save(buffer, 'JPEG2000', irreversible=False, no_jp2=True)
  return buffer.getvalue()


def dataset(frames, *, sop_class=uid.VLPhotographicImageStorage,
            encoding='raw', photometric='RGB', samples=3,
            pixels=True) -> Dataset:
  """A dataset of `frames` ([h, w, 3] or [n, h, w, 3] uint8) with a
  patient's name, ID and birth date. encoding: 'raw' (Explicit VR Little
  Endian), 'jpeg' (JPEG baseline, YBR_FULL_422) or 'j2k' (JPEG 2000
  lossless)."""
  frames = np.asarray(frames)
  if frames.ndim == 3:
    frames = frames[None]
  syntax = {'raw': uid.ExplicitVRLittleEndian, 'jpeg': uid.JPEGBaseline8Bit,
            'j2k': uid.JPEG2000Lossless}[encoding]
  meta = FileMetaDataset()
  meta.MediaStorageSOPClassUID = sop_class
  meta.MediaStorageSOPInstanceUID = uid.generate_uid()
  meta.TransferSyntaxUID = syntax
  ds = Dataset()
  ds.file_meta = meta
  ds.SOPClassUID = sop_class
  ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
  ds.StudyInstanceUID = uid.generate_uid()
  ds.SeriesInstanceUID = uid.generate_uid()
  ds.PatientName = PATIENT_NAME
  ds.PatientID = PATIENT_ID
  ds.PatientBirthDate = BIRTH_DATE
  ds.PatientSex = 'F'
  ds.StudyDate = '20261207'
  ds.StudyTime = '101500'
  ds.AccessionNumber = 'ACC123'
  ds.ReferringPhysicianName = ''
  ds.StudyID = '1'
  ds.Modality = 'XC' if sop_class != uid.CTImageStorage else 'CT'
  ds.SeriesNumber = 1
  ds.InstanceNumber = 1
  ds.Manufacturer = 'test'
  if not pixels:
    return ds
  n, h, w = frames.shape[:3]
  ds.Rows, ds.Columns = h, w
  ds.SamplesPerPixel = samples
  ds.PhotometricInterpretation = photometric
  ds.BitsAllocated = ds.BitsStored = 8
  ds.HighBit = 7
  ds.PixelRepresentation = 0
  if samples == 3:
    ds.PlanarConfiguration = 0
  if n > 1:
    ds.NumberOfFrames = n
  if encoding == 'raw':
    data = frames if samples == 3 else frames[..., 0]
    ds.PixelData = np.ascontiguousarray(data).tobytes()
  else:
    if encoding == 'jpeg':
      ds.PhotometricInterpretation = 'YBR_FULL_422'
    ds.PixelData = encaps.encapsulate([_encoded(f, encoding) for f in frames])
    ds['PixelData'].VR = 'OB'
    ds['PixelData'].is_undefined_length = True
    ds.LossyImageCompression = '01' if encoding == 'jpeg' else '00'
  return ds


def to_bytes(ds: Dataset) -> bytes:
  buffer = io.BytesIO()
  ds.save_as(buffer, enforce_file_format=True)
  return buffer.getvalue()


def write(path, ds: Dataset) -> str:
  path = str(path)
  with open(path, 'wb') as f:
    f.write(to_bytes(ds))
  return path


def read(data: bytes) -> Dataset:
  return pydicom.dcmread(io.BytesIO(data))
