"""MODEL_CARD.md: what a model is for and not for, what it learnt from and
how well it did, for whoever receives it (a clinic, a reviewer).

evaluate writes one into the run folder when it scores the test split, and
export one beside the file it writes. Every figure comes from the run's
eval/test/metrics.json and environment.json (`values`), never typed here;
`render` is a pure function of those values.
"""

import dataclasses
import json
import os

from skinjax import provenance
from skinjax.run_folder import atomic
from skinjax.run_folder import class_names as class_names_lib
from skinjax.run_folder import environment

FILE = 'MODEL_CARD.md'
# metrics.json's headline figures, in the card's order.
HEADLINE = ('top1', 'top3', 'balanced_accuracy', 'macro_f1', 'macro_roc_auc',
            'nll', 'ece')
_BY_TONE = ('top1', 'balanced_accuracy', 'ece')


def values(workdir: str, config_dict: dict, *, checkpoint_step: int,
           weights: str, artifact: dict | None = None) -> dict:
  """What `render` needs, read from the run folder: the test metrics of
  these weights (None if not evaluated yet), the last environment entry."""
  split = 'test_ema' if weights == 'ema' else 'test'
  try:
    with open(os.path.join(workdir, 'eval', split, 'metrics.json')) as f:
      metrics = json.load(f)
  except (OSError, ValueError):
    metrics = None
  entries = environment.read(workdir)
  about = provenance.of(config_dict['dataset']['name'])
  return {
      'model': config_dict['model']['name'],
      'dataset': config_dict['dataset']['name'],
      'provenance': dataclasses.asdict(about) if about else None,
      'class_names': (metrics['class_names'] if metrics else
                      class_names_lib.read(workdir)),
      'checkpoint_step': int(checkpoint_step), 'weights': weights,
      'tta': config_dict['evaluation']['tta'],
      'metrics': metrics, 'split': split,
      'environment': entries[-1] if entries else None,
      'artifact': artifact,
  }


def write(path: str, workdir: str, config_dict: dict, **kwargs) -> str:
  """Renders the card of the run in `workdir` (see `values`) into `path`."""
  atomic.write_text(path, render(values(workdir, config_dict, **kwargs)))
  return path


def _f(value) -> str:
  return '-' if value is None else f'{value:.4f}'


def _interval(interval: dict | None, metric: str) -> str:
  bounds = (interval or {}).get(metric)
  return f'[{bounds[0]:.4f}, {bounds[1]:.4f}]' if bounds else '-'


def _table(header, rows) -> list:
  return (['| ' + ' | '.join(header) + ' |',
           '|' + '---|' * len(header)] +
          ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows])


def render(v: dict) -> str:
  """The card's Markdown from `values`' dict."""
  lines = [f"# Model card: {v['model']} on {v['dataset']}", '',
           f"Checkpoint {v['checkpoint_step']} ({v['weights']} weights). "
           'Written by skinjax from the run folder (its metrics.json and '
           'environment.json); evaluate and export write it again.', '']
  lines += _use()
  lines += _data(v)
  lines += ['## Classes', '', 'The model ranks these classes only; a '
            'condition outside them still gets one of them:', '']
  lines += [f'{i}. {name}' for i, name in enumerate(v['class_names'], 1)]
  lines += [''] + _results(v)
  lines += _failure_modes()
  lines += _provenance_of_model(v)
  return '\n'.join(lines) + '\n'


def _use() -> list:
  return [
      '## Intended use', '',
      'Decision support for a clinician: a ranked differential of skin '
      'conditions with calibrated probabilities, and flags for photos it '
      'cannot judge, for the clinician to weigh with the history, the '
      'examination and other tests. It supports, and never replaces, a '
      "clinician's judgement; its output is not a diagnosis.", '',
      '## Not to be used for', '',
      '- Diagnosis, triage, reassurance or treatment decisions without a '
      'clinician.',
      '- Use by patients or the public as a self-diagnosis tool.',
      '- Conditions outside its classes, photo types it was not trained '
      'on (clinical photos for a dermoscopy model and the reverse), or '
      'populations and skin tones its training data lacks, without a '
      'local evaluation first.',
      '- Ruling out melanoma or any other malignancy.', '']


def _data(v: dict) -> list:
  about = v['provenance']
  lines = ['## Training data', '']
  if about is None:
    return lines + [f"`{v['dataset']}`: no provenance recorded.", '']
  lines += [f"`{v['dataset']}`: {about['title']}.", '',
            f"- Source: {about['source']}", f"- Licence: {about['licence']}"]
  if about['citation']:
    lines += ['- Cite:', '', '```bibtex', about['citation'], '```']
  return lines + ['']


def _results(v: dict) -> list:
  m = v['metrics']
  if m is None:
    return ['## Results on the test split', '',
            f"Not evaluated yet: `python -m skinjax.evaluate --workdir "
            f"WORKDIR --split test --checkpoint {v['checkpoint_step']}"
            + (' --weights ema' if v['weights'] == 'ema' else '') +
            '` writes eval/test/metrics.json, then this card again.', '']
  lines = ['## Results on the test split', '']
  if m['checkpoint_step'] != v['checkpoint_step']:
    lines += [f"**These are the results of checkpoint {m['checkpoint_step']}"
              f", not of checkpoint {v['checkpoint_step']}**: evaluate that "
              'checkpoint on test to have its own.', '']
  interval = m.get('interval')
  level = f"{interval['level']:.0%} interval" if interval else 'interval'
  lines += [f"{m['num_examples']} photos, checkpoint {m['checkpoint_step']}"
            f" (test-time augmentation: {v['tta']}); intervals are "
            f"percentile bootstraps over photos"
            + (f" ({interval['resamples']} resamples)" if interval else '')
            + '.', '']
  lines += _table(['metric', 'value', level], [
      [k, _f(m[k]), _interval(interval, k)] for k in HEADLINE])
  lines += ['', 'Per class:', '']
  lines += _table(['class', 'precision', 'recall', 'F1', 'photos'], [
      [name, _f(c['precision']), _f(c['recall']), _f(c['f1']), c['support']]
      for name, c in m['per_class'].items()])
  return lines + [''] + _skin_tone(m) + _calibration(m) + _flags(m)


def _skin_tone(m: dict) -> list:
  t = m.get('skin_tone')
  if not t:
    return []
  lines = ['## Results by skin tone', '',
           'Caveat: the group is the ITA angle measured on the skin around '
           "the lesion in each photo, not a clinician's Fitzpatrick type; "
           'lighting, vignetting, grey frames and ink move it. Groups of '
           f"fewer than {t['min_support']} photos get no interval and no "
           'place in the gap; a small group says little, and no row here '
           'shows the model fair for a tone its data lacked. '
           f"Tone not measurable: {t['unknown']} photos.", '']
  lines += _table(['group', 'photos'] + [
      f'{k} [{t["level"]:.0%} interval]' for k in _BY_TONE], [
          [group, e['support']] + [
              f"{_f(e[k])} {_interval(e['interval'], k)}" for k in _BY_TONE]
          for group, e in t['groups'].items()])
  if t['gap']:
    lines += ['', 'Gap between the best and the worst group: ' + '; '.join(
        f"{k} {_f(g['difference'])} ({g['best']} vs {g['worst']})"
        for k, g in t['gap'].items()) + '.']
  return lines + ['']


def _calibration(m: dict) -> list:
  c = m['calibration']
  return ['## Calibration', '',
          f"Probabilities are the softmax of the logits divided by a "
          f"temperature fitted on validation: {_f(c['temperature'])}.", '']\
      + _table(['on test', 'before', 'after'], [
          ['ECE', _f(c['ece_before']), _f(c['ece_after'])],
          ['NLL', _f(c['nll_before']), _f(c['nll_after'])]]) + ['']


def _flags(m: dict) -> list:
  s, u = m['selective'], m['unfamiliar']
  if s['threshold'] is None:
    uncertain = ('raised for every photo: at no confidence were validation '
                 f"predictions wrong at most {_f(s['max_risk'])} of the time.")
  else:
    uncertain = (
        f"raised when the top probability is below {_f(s['threshold'])}, "
        'the lowest confidence at which validation predictions were wrong '
        f"at most {_f(s['max_risk'])} of the time. On test, "
        f"{_f(s['coverage'])} of the photos were not flagged, and of those "
        f"{_f(s['risk'])} were wrong.")
  lines = ['## Flags', '', f'- `uncertain`: {uncertain}',
           f"- `unfamiliar`: the photo's {u['score']} score is above "
           f"{_f(u['threshold'])}, which {_f(u['validation_tpr'])} of "
           f"validation photos pass; it flagged {_f(u['flagged'])} of the "
           'test photos. A flagged photo is unlike the training data: its '
           'probabilities mean little, whatever they say.']
  warning = (u.get('shift') or {}).get('warning')
  if warning:
    lines += [f'- Warning on this test set: {warning}']
  return lines + ['']


def _failure_modes() -> list:
  return [
      '## Known failure modes', '',
      '- A condition outside the classes is forced into one of them; the '
      '`unfamiliar` flag catches some such photos, not all.',
      '- Photos of another kind (dermoscopy against clinical photos, '
      'another camera or clinic) shift its outputs; evaluate on local '
      'photos before use.',
      '- Blur, poor lighting, vignetting, ink marks, hair and rulers '
      'change its outputs; frames with little skin make the skin-tone '
      'estimate unreliable.',
      '- Skin tones, ages and body sites that are rare in the training data '
      'are where it is least tested; see the results by skin tone above.',
      '- Calibration holds for photos like the validation split; on other '
      'collections a high probability may be right far less often.',
      '', 'More: docs/evaluation_and_safety.md in the skinjax repository.', '']


def _provenance_of_model(v: dict) -> list:
  lines = ['## Checkpoint and environment', '',
           f"- Model: {v['model']}, checkpoint {v['checkpoint_step']}, "
           f"{v['weights']} weights, test-time augmentation {v['tta']}"]
  if v['artifact']:
    a = v['artifact']
    lines += [f"- Exported as {a['format']}: `{a['file']}`"]
  e = v['environment']
  if e is None:
    return lines + ['- Environment: not recorded (environment.json missing)',
                    '']
  devices = ', '.join(f'{n} x {kind}'
                      for kind, n in (e.get('devices') or {}).items())
  lines += [f"- Trained with skinjax commit {e.get('git_commit') or '-'} on "
            f"{e.get('backend')} ({devices}), {e.get('processes')} "
            f"process(es), Python {e.get('python')}, started "
            f"{e.get('started')} (the latest start)",
            '- Versions: ' + ', '.join(
                f'{k} {ver}' for k, ver in (e.get('versions') or {}).items())]
  return lines + ['']
