"""Ranked differentials as written for people: CSV cells that no spreadsheet
runs as a formula."""

import csv
import json

import numpy as np

from skinjax.inference import differential


def test_csv_cells_are_neutralised_against_formula_injection(tmp_path):
  names = ['=HYPERLINK("http://x","y")', '+1', '-cmd', '@SUM(A1)', 'eczema']
  rows = differential.differentials(np.array([[0.1, 0.2, 0.3, 0.15, 0.25]]),
                                    names, top_k=5, threshold=0.5,
                                    unfamiliar=[True],
                                    skin_tones=[{'group': 'tan', 'ita': 20.0}])
  rows[0]['file'] = '=2+5.jpg'
  differential.write(rows, str(tmp_path / 'out.csv'))
  with open(tmp_path / 'out.csv', newline='') as f:
    [header, row] = list(csv.reader(f))
  assert header[:8] == ['file', 'uncertain', 'unfamiliar', 'quality',
                        'skin_tone', 'ita', 'class_1', 'probability_1']
  # The quality gate did not judge this photo: 'not measured', never blank.
  assert row[:6] == ["'=2+5.jpg", 'True', 'True', 'not measured', 'tan',
                     '20.0']
  row = row[:2] + row[6:]
  classes = row[2::2]
  assert classes == ["'-cmd", 'eczema', "'+1", "'@SUM(A1)",
                     '\'=HYPERLINK("http://x","y")']
  assert not any(c.startswith(('=', '+', '-', '@')) for c in row)
  assert [float(p) for p in row[3::2]] == [0.3, 0.25, 0.2, 0.15, 0.1]
  # JSON is data, not a sheet: names stay as they are.
  differential.write(rows, str(tmp_path / 'out.json'))
  assert json.loads((tmp_path / 'out.json').read_text())[0]['file'] == (
      '=2+5.jpg')


def test_flags_not_measured_are_none_not_false():
  rows = differential.differentials(np.array([[0.9, 0.1]]), ['a', 'b'], 2,
                                    0.5)
  assert rows[0]['unfamiliar'] is None and rows[0]['skin_tone'] is None
  assert rows[0]['uncertain'] is False
