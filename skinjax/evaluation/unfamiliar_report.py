"""What `evaluate` reports of the unfamiliar flag: how many of the evaluated
photos it flags, how far they lie from the validation photos, and how well
each unfamiliarity score tells them from photos the model was not trained on
(`--ood_image_dir`, and a split's photos of held-out classes)."""

from skinjax.data import pipeline
from skinjax.evaluation import image_dir
from skinjax.evaluation import shift
from skinjax.evaluation import unfamiliar
from skinjax.inference import photo_files
from skinjax.inference import preparation


def other_sources(config, ood_image_dir: str | None,
                  held_out_split: tuple | None) -> dict:
  """{'ood': (examples, about), 'held_out': (examples, about)} for the photos
  under `ood_image_dir` and, given (builder, split), that split's photos of
  config.dataset.held_out_classes."""
  others = {}
  if ood_image_dir:
    paths, loaded, failed = photo_files.load(
        [ood_image_dir], preparation.Recipe.from_config(config))
    if not loaded:
      raise image_dir.PhotoFolderError(
          f'--ood_image_dir={ood_image_dir}: no usable image '
          f'({len(paths)} files)')
    others['ood'] = ([{'image': image, 'label': 0} for _, image in loaded], {
        'image_dir': ood_image_dir,
        'skipped': [{'file': f, 'reason': r} for f, r in failed]})
  if held_out_split is not None:
    builder, split = held_out_split
    held_out = config.dataset.held_out_classes
    others['held_out'] = (pipeline.held_out_source(builder, split, held_out),
                          {'classes': list(held_out), 'split': split})
  return others


def summary(scorer, result: dict, others: dict) -> dict:
  """The unfamiliar flag on the evaluated photos (`result`, the eval step's
  outputs) and, for each of `others` ({key: (about, count, outputs)}), the
  share flagged and each score's separation from the evaluated photos."""
  calibration = scorer.calibration
  scores = scorer.unfamiliarity(result)
  flagged = scorer.flag_unfamiliar(scores)
  report = {'unfamiliar': {
      'score': calibration.unfamiliar_score,
      'threshold': calibration.unfamiliar_threshold,
      'validation_tpr': calibration.unfamiliar_tpr,
      'flagged': float(flagged.mean()),
      'shift': shift.summary(scores, scorer.feature_statistics, flagged,
                             calibration.unfamiliar_tpr)}}
  for key, (about, count, outputs) in others.items():
    other = scorer.unfamiliarity(outputs)
    report[key] = {
        **about, 'num_examples': count,
        'flagged': float(scorer.flag_unfamiliar(other).mean()),
        'scores': unfamiliar.compare(scores, other,
                                     calibration.unfamiliar_tpr)}
  return report
