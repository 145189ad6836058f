"""The figures of an evaluation report, written as PNG files.

matplotlib's object API (Figure, not pyplot) keeps no global state and needs
no display. Figure sizes grow with the number of classes so that every class
name stays legible.
"""

import os

from matplotlib.figure import Figure
import numpy as np

_DPI = 120


def _save(fig: Figure, path: str) -> str:
  fig.savefig(path, dpi=_DPI, bbox_inches='tight')
  return path


def confusion_matrix(counts, class_names, path: str) -> str:
  """Rows normalised to the true class's support, as percentages."""
  counts = np.asarray(counts, np.float64)
  support = counts.sum(axis=1, keepdims=True)
  rates = np.divide(counts, support, out=np.zeros_like(counts),
                    where=support > 0)
  n = len(class_names)
  side = max(4.0, 0.5 * n + 2.0)
  fig = Figure(figsize=(side + 1.5, side))
  ax = fig.add_subplot()
  image = ax.imshow(rates, cmap='Blues', vmin=0, vmax=1)
  fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04,
               label='fraction of the true class')
  ax.set_xticks(range(n), class_names, rotation=45, ha='right',
                rotation_mode='anchor')
  ax.set_yticks(range(n), [f'{name} ({int(s)})' for name, s in
                           zip(class_names, support[:, 0])])
  ax.set_xlabel('predicted class')
  ax.set_ylabel('true class (support)')
  if n <= 25:
    for (i, j), rate in np.ndenumerate(rates):
      if counts[i, j]:
        ax.text(j, i, f'{100 * rate:.0f}', ha='center', va='center',
                fontsize=8, color='white' if rate > 0.5 else 'black')
  ax.set_title('Confusion matrix (% of each true class)')
  return _save(fig, path)


def reliability_diagram(before: dict, after: dict, ece_before: float,
                        ece_after: float, temperature: float, path: str) -> str:
  """Accuracy against confidence per bin, before and after temperature
  scaling, above the histogram of confidences."""
  fig = Figure(figsize=(6, 6.5))
  top, bottom = fig.subplots(2, 1, sharex=True,
                             gridspec_kw={'height_ratios': [3, 1]})
  edges = np.asarray(before['edges'])
  centres, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
  top.plot([0, 1], [0, 1], color='grey', linestyle='--', label='perfect')
  for bins, label, colour, shift in (
      (before, f'uncalibrated (ECE {ece_before:.3f})', 'tab:red', -0.25),
      (after, f'T = {temperature:.2f} (ECE {ece_after:.3f})', 'tab:blue',
       0.25)):
    accuracy = np.nan_to_num(np.asarray(bins['accuracy'], np.float64))
    top.bar(centres + shift * width, accuracy, width=width / 2, color=colour,
            alpha=0.8, label=label)
    bottom.bar(centres + shift * width, bins['count'], width=width / 2,
               color=colour, alpha=0.8)
  top.set_xlim(0, 1)
  top.set_ylim(0, 1)
  top.set_ylabel('accuracy')
  top.set_title('Reliability diagram (top-label confidence)')
  top.legend(loc='upper left')
  bottom.set_xlabel('confidence')
  bottom.set_ylabel('examples')
  return _save(fig, path)


def per_class_recall(per_class: dict, class_names, path: str) -> str:
  """Horizontal bars, one per class, labelled with recall and support."""
  recall = [per_class[n]['recall'] for n in class_names]
  support = [per_class[n]['support'] for n in class_names]
  fig = Figure(figsize=(7, max(2.5, 0.35 * len(class_names) + 1)))
  ax = fig.add_subplot()
  y = np.arange(len(class_names))
  ax.barh(y, recall, color='tab:blue')
  ax.set_yticks(y, class_names)
  ax.invert_yaxis()
  ax.set_xlim(0, 1.15)
  ax.set_xlabel('recall (sensitivity)')
  for i, (r, s) in enumerate(zip(recall, support)):
    ax.text(r + 0.01, i, f'{r:.2f} (n={s})', va='center', fontsize=8)
  ax.set_title('Recall per class')
  return _save(fig, path)


def risk_coverage(curve: dict, selective: dict, path: str) -> str:
  """Error among accepted predictions against the fraction accepted."""
  fig = Figure(figsize=(6, 4.5))
  ax = fig.add_subplot()
  ax.plot(curve['coverage'], curve['risk'], color='tab:blue',
          label=f"AURC {selective['area_under_risk_coverage']:.3f}")
  ax.axhline(selective['max_risk'], color='grey', linestyle='--',
             label=f"target error {selective['max_risk']:.2f}")
  if selective['threshold'] is not None and selective['risk'] is not None:
    ax.plot(selective['coverage'], selective['risk'], 'o', color='tab:red',
            label=f"confidence >= {selective['threshold']:.2f}: coverage "
                  f"{selective['coverage']:.2f}")
  ax.set_xlim(0, 1)
  ax.set_ylim(0, max(max(curve['risk'], default=0), selective['max_risk'])
              * 1.1 + 1e-3)
  ax.set_xlabel('coverage (fraction of photos the model answers)')
  ax.set_ylabel('error among answered')
  ax.set_title('Risk-coverage (calibrated top probability)')
  ax.legend(loc='upper left')
  return _save(fig, path)


def by_skin_tone(stratified: dict, path: str) -> str:
  """Top-1 and balanced accuracy per ITA group, light to dark, with their
  bootstrap intervals and support."""
  groups = list(stratified['groups'])
  fig = Figure(figsize=(7, 4.5))
  ax = fig.add_subplot()
  x = np.arange(len(groups))
  for offset, metric, colour in ((-0.2, 'top1', 'tab:blue'),
                                 (0.2, 'balanced_accuracy', 'tab:orange')):
    values = [stratified['groups'][g][metric] for g in groups]
    low_high = [stratified['groups'][g]['interval'] for g in groups]
    errors = np.array([[v - i[metric][0], i[metric][1] - v]
                       if i and i[metric] else [0, 0]
                       for v, i in zip(values, low_high)]).T
    ax.bar(x + offset, values, 0.4, yerr=errors, capsize=3, color=colour,
           label=metric.replace('_', ' '))
  ax.set_xticks(x, [f"{g.replace('_', ' ')}\nn={stratified['groups'][g]['support']}"
                    for g in groups])
  ax.set_ylim(0, 1.1)
  ax.set_xlabel('skin tone (ITA group, measured on the photo)')
  ax.set_title(f"By skin tone ({stratified['level']:.0%} bootstrap intervals)")
  ax.legend(loc='upper right')
  return _save(fig, path)


def write_all(metrics: dict, class_names, out_dir: str) -> dict:
  """Every figure of the report; {name: path}."""
  calibration = metrics['calibration']
  tone = ({'by_skin_tone': by_skin_tone(
      metrics['skin_tone'], os.path.join(out_dir, 'by_skin_tone.png'))}
          if metrics.get('skin_tone', {}).get('groups') else {})
  return {**tone,
      'confusion_matrix': confusion_matrix(
          metrics['confusion_matrix'], class_names,
          os.path.join(out_dir, 'confusion_matrix.png')),
      'reliability': reliability_diagram(
          calibration['reliability_before'], calibration['reliability_after'],
          calibration['ece_before'], calibration['ece_after'],
          calibration['temperature'], os.path.join(out_dir, 'reliability.png')),
      'per_class_recall': per_class_recall(
          metrics['per_class'], class_names,
          os.path.join(out_dir, 'per_class_recall.png')),
      'risk_coverage': risk_coverage(
          metrics['selective']['curve'], metrics['selective'],
          os.path.join(out_dir, 'risk_coverage.png')),
  }
