"""Who can reach the service: the address it listens on, and the bearer
token it requires. On a loopback address only this machine can connect,
so a token is optional; on any other, the service does not start without
one. The token comes from a file or the environment, never from the
command line, where every user of the machine sees it (`ps`)."""

import hmac
import ipaddress
import os
import socket
import stat

from skinjax import errors

TOKEN_VARIABLE = 'SKINJAX_SERVE_TOKEN'
MIN_TOKEN_LENGTH = 16
_NEW_TOKEN = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


class AccessError(errors.UserError):
  """An address or token the service refuses to start with; the message
  names the flag, file or variable."""


def _addresses(host: str, port: int) -> list:
  try:
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                              flags=socket.AI_PASSIVE)
  except socket.gaierror as e:
    raise AccessError(f'--host={host}: {e.strerror}') from None


def is_loopback(host: str) -> bool:
  """Whether every address `host` stands for is this machine's loopback."""
  return all(ipaddress.ip_address(info[4][0].split('%')[0]).is_loopback
             for info in _addresses(host, 0))


def read_token(token_file, environ) -> str | None:
  """The token from `token_file` (which others must not be able to read)
  or else from $SKINJAX_SERVE_TOKEN; None when neither is set."""
  if token_file:
    try:
      mode = os.stat(token_file).st_mode
      with open(token_file) as f:
        token = f.read().strip()
    except OSError as e:
      raise AccessError(f'--token_file={token_file}: {e.strerror}') from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
      raise AccessError(f'--token_file={token_file}: readable by other users '
                        f'(mode {stat.filemode(mode)}); chmod 600 it')
    source = f'--token_file={token_file}'
  elif environ.get(TOKEN_VARIABLE):
    token, source = environ[TOKEN_VARIABLE].strip(), f'${TOKEN_VARIABLE}'
  else:
    return None
  if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
    raise AccessError(f'{source}: a token needs at least {MIN_TOKEN_LENGTH} '
                      f'characters and no spaces; make one with {_NEW_TOKEN}')
  return token


def required_token(host: str, token_file, environ) -> str | None:
  """The token requests must carry (None: none needed); refuses a
  non-loopback `host` without one."""
  token = read_token(token_file, environ)
  if token is None and not is_loopback(host):
    raise AccessError(
        f'--host={host} is reachable from other machines: requests must then '
        f'carry a token. Put one in ${TOKEN_VARIABLE} or a file named by '
        f'--token_file (make one with {_NEW_TOKEN})')
  return token


def bearer_matches(authorization, token: str) -> bool:
  """Whether an Authorization header carries `token` (compared in constant
  time)."""
  scheme, _, given = (authorization or '').partition(' ')
  return scheme.lower() == 'bearer' and hmac.compare_digest(
      given.strip().encode(), token.encode())


def listen(host: str, port: int) -> socket.socket:
  """A listening socket on host:port (port 0: a free one)."""
  family, _, _, _, address = _addresses(host, port)[0]
  try:
    return socket.create_server(address, family=family, backlog=128)
  except OSError as e:
    raise AccessError(f'--host={host} --port={port}: cannot listen there '
                      f'({e.strerror})') from None
