"""`predict` as a function of values: ranked differentials of photo files,
from a run folder alone (its config, class names, weights and calibration),
printed, and written as CSV or JSON and Grad-CAM overlays if asked. A DICOM
file's frames are photos too; their rows name the instance by its UIDs, and
an --output folder gets a Structured Report per instance, and with
--saliency a Grad-CAM Secondary Capture per frame (skinjax.dicom)."""

import os

import numpy as np

from skinjax import errors
from skinjax.dicom import captures
from skinjax.dicom import reports
from skinjax.inference import differential
from skinjax.inference import photo_files
from skinjax.inference import preparation
from skinjax.inference import quality
from skinjax.inference import restore
from skinjax.inference import saliency
from skinjax.inference import skin_tone


class NoUsablePhoto(errors.UserError):
  """None of the files named is an image that can be scored."""


def predict(config, workdir: str, patterns, *, checkpoint: str = 'best',
            weights: str = 'raw', top_k: int = 3, output: str | None = None,
            saliency_dir: str | None = None) -> list:
  """The differential of every usable photo in `patterns` (files, folders,
  globs), each row with its 'file'; unusable files are reported on stderr
  and skipped. Writes nothing into the run folder."""
  folder = bool(output) and (output.endswith(os.sep) or os.path.isdir(output))
  if output and not folder and not output.endswith(('.csv', '.json')):
    raise errors.UserError(f'--output={output}: use a .csv or .json file '
                           'name, or a folder (ending in /)')
  recipe = preparation.Recipe.from_config(config)
  dicom_frames = {}
  paths, loaded, _ = photo_files.load(patterns, recipe, dicom_frames)
  if not loaded:
    raise NoUsablePhoto(f'none of the {len(paths)} files is a usable image')
  scorer = restore.load(config, workdir, checkpoint, weights)
  images = np.stack([recipe.model_input(jpeg) for _, jpeg in loaded])
  result = scorer.outputs(images, config.eval_batch_size, 'scoring photos')
  print(f'{config.model.name}, checkpoint step {scorer.step}, temperature '
        f'{scorer.calibration.temperature:.3f}\n')
  region = skin_tone.region_for(config.dataset.name)
  gate = scorer.quality_gate(config)
  tones, qualities = zip(*(quality.judge(jpeg, region, gate)
                           for _, jpeg in loaded))
  rows = scorer.differentials(result, top_k, skin_tones=tones,
                              qualities=qualities)
  for row, (path, _) in zip(rows, loaded):
    row['file'] = path
    if path in dicom_frames:
      row['dicom'] = dicom_frames[path].reference
  print(differential.table(rows, scorer.calibration.threshold))
  if folder:
    _write_folder(output, rows, dicom_frames,
                  reports.algorithm(config.model.name, scorer))
  elif output:
    differential.write(rows, output)
    print(f'written to {output}')
  if saliency_dir:
    overlays = _write_saliency(saliency_dir, scorer, images,
                               result['logits'], loaded, rows,
                               config.eval_batch_size)
    if folder and dicom_frames:
      written = captures.write_captures(output, rows, dicom_frames, overlays)
      print(f'{written} Grad-CAM DICOM Secondary Capture(s) written to '
            f'{output}')
  return rows


def _write_folder(folder: str, rows, dicom_frames: dict,
                  algorithm: dict) -> None:
  """results.json, and a DICOM Structured Report of each DICOM instance
  scored, named by the instance's SOP Instance UID."""
  os.makedirs(folder, exist_ok=True)
  differential.write(rows, os.path.join(folder, 'results.json'))
  written = reports.write_reports(folder, rows, dicom_frames, algorithm)
  print(f'written to {os.path.join(folder, "results.json")}'
        + (f' and {written} DICOM SR file(s) beside it' if written else ''))


def _write_saliency(folder: str, scorer, images, logits, loaded, rows,
                    batch_size: int) -> list:
  """A Grad-CAM overlay of each photo's top class, as the model saw it;
  the files' paths, in the order of `rows`."""
  os.makedirs(folder, exist_ok=True)
  top = scorer.probabilities(logits).argmax(axis=-1)
  maps = saliency.grad_cam_batches(scorer.model, scorer.state, images, top,
                                   scorer.mesh, batch_size)
  paths = []
  for i, ((path, _), cam) in enumerate(zip(loaded, maps)):
    name, p = rows[i]['differential'][0]
    stem = os.path.splitext(os.path.basename(path))[0]
    paths.append(os.path.join(folder, f'{i:04d}_{stem}_gradcam.png'))
    saliency.save_overlay(images[i], cam, f'{name} ({p:.2f})', paths[-1])
  print(f'Grad-CAM overlays written to {folder}/')
  return paths
