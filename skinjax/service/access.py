"""Who can reach the service: the address it listens on, and the bearer
token it requires. On a loopback address only this machine can connect,
so a token is optional; on any other, the service does not start without
one. The token comes from a file or the environment, never from the
command line, where every user of the machine sees it (`ps`)."""

import errno
import hmac
import ipaddress
import collections
import os
import socket
import stat
import threading

from skinjax import errors

TOKEN_VARIABLE = 'SKINJAX_SERVE_TOKEN'
MIN_TOKEN_LENGTH = 16
MIN_DISTINCT_CHARACTERS = 8
MIN_FREE_CHARACTERS = 10
MAX_TOKEN_FILE_BYTES = 4096
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
  """The token from `token_file` (its owner's alone) or else from
  $SKINJAX_SERVE_TOKEN; None when neither is set."""
  if token_file:
    token, source = _read_token_file(token_file), f'--token_file={token_file}'
  elif environ.get(TOKEN_VARIABLE):
    token, source = environ[TOKEN_VARIABLE].strip(), f'${TOKEN_VARIABLE}'
  else:
    return None
  _check_token(token, source)
  return token


def _read_token_file(path: str) -> str:
  """The file's text, read from the one descriptor whose owner and mode were
  checked (a second open could find another file there), never through a
  symlink (which could point at a file another user controls)."""
  source = f'--token_file={path}'
  try:
    # O_NONBLOCK: a FIFO put there opens at once (and is then refused).
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
                 | os.O_NONBLOCK)
  except OSError as e:
    if e.errno == errno.ELOOP:
      raise AccessError(f'{source}: is a symlink; name the file '
                        'itself') from None
    raise AccessError(f'{source}: {e.strerror}') from None
  try:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
      raise AccessError(f'{source}: not a regular file')
    if info.st_uid != os.geteuid():
      raise AccessError(f'{source}: owned by uid {info.st_uid}, not by this '
                        f'user (uid {os.geteuid()}); use a file of your own')
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
      raise AccessError(f'{source}: readable by other users '
                        f'(mode {stat.filemode(info.st_mode)}); chmod 600 it')
    data = os.read(fd, MAX_TOKEN_FILE_BYTES + 1)
  except OSError as e:
    raise AccessError(f'{source}: {e.strerror}') from None
  finally:
    os.close(fd)
  if len(data) > MAX_TOKEN_FILE_BYTES:
    raise AccessError(f'{source}: over {MAX_TOKEN_FILE_BYTES} bytes; a token '
                      f'file holds one token (make one with {_NEW_TOKEN})')
  return data.decode('latin-1').strip()


def _check_token(token: str, source: str) -> None:
  """Refuses a token that no header can carry, or one quickly guessed."""
  if not all(33 <= ord(c) <= 126 for c in token):
    raise AccessError(f'{source}: a token is printable ASCII without spaces '
                      '(a header carries no other); make one with '
                      f'{_NEW_TOKEN}')
  weakness = _weakness(token)
  if weakness:
    raise AccessError(f'{source}: {weakness}, too easy to guess; make one '
                      f'with {_NEW_TOKEN}')


def _weakness(token: str) -> str | None:
  """Why `token` is obviously guessable, or None. Not an entropy estimate
  (no test on one string can give that), only a refusal of what a person
  types: short, few distinct characters, one piece repeated, or mostly runs
  up or down the alphabet ('0123456789abcdef')."""
  if len(token) < MIN_TOKEN_LENGTH:
    return (f'{len(token)} characters (a token needs at least '
            f'{MIN_TOKEN_LENGTH} characters)')
  distinct = len(set(token))
  if distinct < MIN_DISTINCT_CHARACTERS:
    return (f'{distinct} distinct characters (at least '
            f'{MIN_DISTINCT_CHARACTERS} needed)')
  period = next(p for p in range(1, len(token) + 1)
                if token[p:] == token[:len(token) - p])
  if period * 2 <= len(token):
    return f'a {period}-character piece repeated'
  # A character that repeats its neighbour or steps one up or down from it
  # ('1234', 'aaab') adds next to nothing to a guesser's work.
  free = 1 + sum(abs(ord(b) - ord(a)) > 1 for a, b in zip(token, token[1:]))
  if free < MIN_FREE_CHARACTERS:
    return (f'{len(token) - free} of {len(token)} characters continue a run '
            "such as '1234' or 'aaa'")
  return None


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


class FailedAttempts:
  """Wrong tokens per client address: after `failures` of them within
  `window` seconds a client is locked out for `lockout` seconds, so guessing
  is bounded however fast one sends. Memory is bounded too: past
  `max_clients` addresses, the one whose last failure is oldest is
  forgotten. Time is passed in (`now`, seconds on any monotonic clock), so
  it is tested without sleeping. Safe to call from several threads."""

  def __init__(self, failures: int = 10, window: float = 60.0,
               lockout: float = 60.0, max_clients: int = 4096):
    if min(failures, max_clients) < 1 or min(window, lockout) <= 0:
      raise ValueError('FailedAttempts: failures and max_clients must be '
                       '>= 1, window and lockout > 0')
    self.failures, self.window, self.lockout = failures, window, lockout
    self.max_clients = max_clients
    # client -> (times of its recent failures, end of its lockout or 0);
    # ordered by last failure, oldest first.
    self._clients = collections.OrderedDict()
    self._lock = threading.Lock()

  def locked(self, client, now: float) -> float:
    """Seconds `client` must still wait before it is heard again; 0.0 when
    it may try now."""
    with self._lock:
      entry = self._clients.get(client)
      return max(0.0, entry[1] - now) if entry else 0.0

  def failed(self, client, now: float) -> None:
    """Counts a wrong or missing token from `client` at `now`."""
    with self._lock:
      times, until = self._clients.pop(client, (collections.deque(), 0.0))
      while times and times[0] <= now - self.window:
        times.popleft()
      times.append(now)
      if len(times) >= self.failures:
        times.clear()
        until = now + self.lockout
      self._clients[client] = (times, until)
      while len(self._clients) > self.max_clients:
        self._clients.popitem(last=False)

  def succeeded(self, client) -> None:
    """Forgets `client`'s failures: it carried the right token."""
    with self._lock:
      self._clients.pop(client, None)

  def __len__(self) -> int:
    return len(self._clients)


def listen(host: str, port: int) -> socket.socket:
  """A listening socket on host:port (port 0: a free one)."""
  family, _, _, _, address = _addresses(host, port)[0]
  try:
    return socket.create_server(address, family=family, backlog=128)
  except OSError as e:
    raise AccessError(f'--host={host} --port={port}: cannot listen there '
                      f'({e.strerror})') from None
