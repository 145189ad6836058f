"""HTTPS for the service: the certificate and key named in the config,
checked at start (before any model work) by loading them as the server
will."""

import os
import ssl
import stat

from skinjax.service import access


def files(serve) -> tuple | None:
  """(certificate, key) paths of serve.tls_certificate and serve.tls_key,
  or None when both are empty; AccessError when they cannot serve."""
  certificate, key = serve.tls_certificate, serve.tls_key
  if not certificate and not key:
    return None
  if not (certificate and key):
    raise access.AccessError('config.serve.tls_certificate and '
                             'config.serve.tls_key: give both (a PEM '
                             'certificate chain and its private key) or '
                             'neither')
  try:
    mode = os.stat(key).st_mode
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(certificate, key)
  except FileNotFoundError as e:
    raise access.AccessError(f'{e.filename}: no such file (config.serve.'
                             'tls_certificate / tls_key)') from None
  except (ssl.SSLError, OSError) as e:
    reason = getattr(e, 'reason', None) or e.strerror or str(e)
    raise access.AccessError(
        f'config.serve.tls_certificate={certificate}, tls_key={key}: not a '
        f'PEM certificate and its private key ({reason})') from None
  if mode & stat.S_IROTH:
    raise access.AccessError(f'config.serve.tls_key={key}: readable by every '
                             f'user (mode {stat.filemode(mode)}); chmod 600')
  return certificate, key
