r"""Exports a run's calibrated checkpoint as one file that runs without skinjax.

  python -m skinjax.export --workdir runs/ham10000 --format onnx|stablehlo \
      --output model.onnx [--checkpoint best|latest|STEP] [--weights raw|ema]

The file takes uint8 RGB photos [batch, S, S, 3] already centre-cropped and
resized to the model's input size S (skinjax.exporting.exported.prepare, or
the recipe in its metadata) and returns calibrated probabilities [batch,
classes]: normalisation, the network, the run's test-time augmentation, the
temperature and the softmax are inside. Its metadata holds the class names,
the temperature, the abstain threshold, the input size and preparation, the
skinjax version and the checkpoint step. ONNX (jax2onnx; checked with
onnxruntime) or StableHLO (a zip of jax.export's serialized program and
metadata.json); the batch dimension is dynamic in both. The file is written
only once it matches the JAX model within 1e-4 on check images, with a
MODEL_CARD.md beside it (intended use, training data, the run's test
results from its eval/test/metrics.json, environment). The config
is the run's own config.json, as in evaluate; the run folder alone is read
(a checkpoint not yet calibrated is an error naming the `evaluate` command
that calibrates it).
"""

from absl import app
from absl import flags

from skinjax.cli import checks
from skinjax.cli import compilation_cache
from skinjax.cli import flags as cli_flags
from skinjax.cli import main as cli_main
from skinjax.exporting import writer

_RUN = cli_flags.define_run_flags(__name__)
_FORMAT = flags.DEFINE_enum('format', None, list(writer.FORMATS),
                            'onnx: for onnxruntime and other ONNX runtimes; '
                            'stablehlo: jax.export, for JAX or XLA.',
                            required=True)
_OUTPUT = flags.DEFINE_string('output', None, 'The file to write.',
                              required=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  config = _RUN.evaluation_config()
  checks.validate_here(config, batch_keys=('eval_batch_size',))
  compilation_cache.enable(config)
  meta = writer.export(config, _RUN.workdir.value, _FORMAT.value,
                       _OUTPUT.value, checkpoint=_RUN.checkpoint.value,
                       weights=_RUN.weights.value)
  print(f"{meta['model']}, checkpoint step {meta['checkpoint_step']}, "
        f"temperature {meta['temperature']:.3f}, {len(meta['class_names'])} "
        f'classes, input uint8 [batch, {meta["image_size"]}, '
        f'{meta["image_size"]}, 3]: written to {_OUTPUT.value}, model card '
        f'{writer.card_path(_OUTPUT.value)}')


if __name__ == '__main__':
  cli_main.run(main)
