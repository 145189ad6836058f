"""The benchmark's JSON report as plain-text tables."""


def _format(value, spec: str) -> str:
  return '-' if value is None else format(value, spec)


def _table(title: str, header, rows) -> str:
  rows = [[str(cell) for cell in row] for row in rows]
  widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
  lines = [title] + ['  '.join(cell.rjust(width) for cell, width in
                               zip(row, widths)) for row in [header, *rows]]
  return '\n'.join(lines)


def _setting(row) -> list:
  width = f" w{row['width']}" if 'width' in row else ''
  return [row['model'] + width, row['image_size'], row['dtype'],
          row['batch_size']]


def _error(row) -> str:
  return 'error: ' + row['error'].splitlines()[-1][:100]


def _pipeline(section) -> str:
  rows = [[r['image_size'], r['loader'], r['num_workers'], r['num_threads'],
           _format(r['images_per_second'], '.0f'),
           _format(r['images_per_cpu_second'], '.0f'),
           _format(r['cores_busy'], '.2f'),
           _format(r.get('startup_seconds'), '.1f')]
          for r in section['results']]
  title = (f"Input pipeline: {section['dataset']}, {section['num_examples']} "
           f"JPEGs of {section['mean_jpeg_bytes'] / 1e3:.0f} KB, short side "
           f"{section['mean_short_side']:.0f} px, batch {section['batch_size']}")
  return '\n'.join([_table(title, ['px', 'loader', 'workers', 'threads',
                                  'img/s', 'img/cpu-s', 'cores', 'start s'],
                          rows), *section['notes']])


def _train_step(results) -> str:
  rows = []
  for r in results:
    if 'error' in r:
      rows.append(_setting(r) + [_error(r)])
      continue
    rows.append(_setting(r) + [
        _format(r['compile_seconds'], '.1f'),
        _format(1e3 * r['step_seconds'], '.0f'),
        _format(r['images_per_second'], '.1f'),
        _format(r['images_per_second_per_device'], '.1f'),
        _format(r['peak_memory_bytes'] / 2**20, '.0f'),
        _format(r['flops_per_step_per_device'] and
                r['flops_per_step_per_device'] / 1e9, '.1f'),
        _format(r['flops_per_second_per_device'] and
                r['flops_per_second_per_device'] / 1e9, '.1f'),
        _format(r['mfu'] and 100 * r['mfu'], '.1f')])
  sources = sorted({r['memory_source'] for r in results if 'error' not in r})
  return _table(f"Train step, synthetic batch (memory: {'; '.join(sources)})",
                ['model', 'px', 'dtype', 'batch', 'compile s', 'step ms',
                 'img/s', 'img/s/dev', 'peak MiB', 'GFLOP/step',
                 'GFLOP/s/dev', 'MFU %'], rows)


def _end_to_end(results) -> str:
  rows = []
  for r in results:
    if 'end_to_end' not in r:
      continue
    e2e = r['end_to_end']
    rows.append(_setting(r) + [
        e2e['num_workers'], e2e['num_threads'],
        _format(e2e['images_per_second'], '.1f'),
        _format(r['images_per_second'], '.1f'),
        _format(e2e['images_per_second'] / r['images_per_second'], '.2f'),
        _format(100 * e2e['input_wait_fraction'], '.0f')])
  return _table('End to end: the real pipeline feeding the step',
                ['model', 'px', 'dtype', 'batch', 'workers', 'threads',
                 'img/s', 'synthetic', 'ratio', 'input wait %'], rows)


def _torch(section) -> str:
  if 'skipped' in section:
    return f"PyTorch side by side: skipped ({section['skipped']})"
  rows = []
  for r in section['results']:
    if 'error' in r:
      rows.append(_setting(r) + [_error(r)])
      continue
    rows.append(_setting(r) + [
        r['device'], r['num_threads'],
        _format(1e3 * r['step_seconds'], '.0f'),
        _format(r['images_per_second'], '.1f'),
        _format(r.get('skinjax_images_per_second'), '.1f'),
        _format(r.get('skinjax_over_torch'), '.2f'),
        _format(r['peak_memory_bytes'] / 2**20, '.0f')])
  return _table('PyTorch eager, channels-last, same step (ratio = skinjax / '
                'torch images/s)',
                ['model', 'px', 'dtype', 'batch', 'device', 'threads',
                 'step ms', 'img/s', 'skinjax', 'ratio', 'peak MiB'], rows)


def tables(report: dict) -> str:
  machine = report['machine']
  parts = [f"{machine['device_count']} x {machine['device_kind']} "
           f"({machine['platform']}), {machine['cpu_cores']} CPU cores "
           f"({machine['cpu_model']}); "
           + ', '.join(f'{k} {v}' for k, v in machine['versions'].items()
                       if v)]
  if 'pipeline' in report:
    parts.append(_pipeline(report['pipeline']))
  if 'train_step' in report:
    parts.append(_train_step(report['train_step']))
    if any('end_to_end' in r for r in report['train_step']):
      parts.append(_end_to_end(report['train_step']))
  if 'torch' in report:
    parts.append(_torch(report['torch']))
  parts += report['notes']
  return '\n\n'.join(parts)
