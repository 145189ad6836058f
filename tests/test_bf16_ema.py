"""bfloat16 training reaches float32's test accuracy on the synthetic dataset,
and the EMA weights are evaluated beside the raw ones: experiments/bf16_ema/
run.sh, two README-sized runs (18 minutes of CI's 2-core machine), so in
the experiments tier, which CI does not run."""

import json
import os
import subprocess
import sys

import pytest

from helpers import REPO, records


@pytest.mark.experiment
def test_bfloat16_matches_float32_test_top1_within_a_point(tmp_path):
  result = subprocess.run(
      ['experiments/bf16_ema/run.sh', str(tmp_path),
       f'--config.dataset.data_dir={tmp_path / "tfds"}',
       '--config.wandb.mode=disabled'],
      cwd=REPO, env=dict(os.environ, SKINJAX_VENV=sys.prefix),
      capture_output=True, text=True, timeout=3600)
  assert result.returncode == 0, result.stderr[-3000:]
  top1 = {}
  for dtype in ('float32', 'bfloat16'):
    evaluated = {}
    for name in ('test', 'test_ema'):
      with open(tmp_path / dtype / 'eval' / name / 'metrics.json') as f:
        evaluated[name] = json.load(f)
    top1[dtype] = evaluated['test']['top1']
    val_ema = [r['val_ema/top1'] for r in records(tmp_path / dtype)
               if 'val_ema/top1' in r]
    assert len(val_ema) == 3  # validated at every checkpoint: 500, 1000, 1500
    print(f"{dtype}: test top1 {top1[dtype]:.4f}, EMA weights "
          f"{evaluated['test_ema']['top1']:.4f}; EMA validation top1 {val_ema}")
    assert min(top1[dtype], evaluated['test_ema']['top1']) >= 0.90
    assert (tmp_path / dtype / 'calibration' / '1500.ema.json').exists()
  assert abs(top1['bfloat16'] - top1['float32']) <= 0.01
