"""What every skinjax tfds builder shares (a mixin, listed before
tfds.core.GeneratorBasedBuilder): its provenance in the dataset info, and
console lines that say what happens, since nothing is downloaded."""

from skinjax import provenance


class SkinjaxBuilder:
  """Mixin of skinjax's tfds builders."""

  def _about(self, description: str) -> dict:
    """DatasetInfo's description (the licence and source appended) and
    citation, from skinjax.provenance."""
    about = provenance.of(self.name)
    return dict(description=about.described(description),
                citation=about.citation)

  def _log_download_bytes(self) -> None:
    # tfds's 'Downloading and preparing dataset Unknown size ...': nothing
    # is downloaded, and skinjax.data.prepare has said 'Preparing ...'.
    pass

  def _log_download_done(self) -> None:
    print(f'Prepared {self.name}/{self.builder_config.name} in '
          f'{self.data_dir}.', flush=True)
