"""The service's token: read once from a file only its owner can touch,
never through a symlink, printable ASCII, not obviously guessable; and a
client that keeps guessing is locked out for a while."""

import os
import secrets

import pytest

from skinjax.service import access

TOKEN = secrets.token_urlsafe(32)


def _token_file(tmp_path, text, mode=0o600, name='token'):
  path = tmp_path / name
  path.write_text(text, encoding='utf-8')
  path.chmod(mode)
  return str(path)


def _refused(token_file, environ, match):
  with pytest.raises(access.AccessError, match=match) as refusal:
    access.read_token(token_file, environ)
  assert '\n' not in str(refusal.value)
  return str(refusal.value)


def test_a_good_token_is_read_from_its_file_or_the_environment(tmp_path):
  assert access.read_token(_token_file(tmp_path, TOKEN + '\n'), {}) == TOKEN
  assert access.read_token(None, {access.TOKEN_VARIABLE: TOKEN}) == TOKEN
  assert access.read_token(None, {}) is None


def test_a_symlink_is_refused_and_its_target_left_alone(tmp_path):
  """A link could point at a file another user writes; refused outright,
  even when what it points at would pass."""
  target = _token_file(tmp_path, TOKEN, name='real')
  link = tmp_path / 'link'
  link.symlink_to(target)
  message = _refused(str(link), {}, 'is a symlink')
  assert str(link) in message
  with open(target, encoding='utf-8') as f:
    assert f.read() == TOKEN


def test_a_file_of_another_user_or_readable_by_others_is_refused(tmp_path):
  if os.geteuid() == 0:
    others = _token_file(tmp_path, TOKEN, name='others')
    os.chown(others, 65534, 65534)
  else:
    others = '/etc/passwd'  # root's; checked before its mode
  _refused(others, {}, 'owned by uid .*, not by this user')
  for mode in (0o640, 0o604, 0o610):
    _refused(_token_file(tmp_path, TOKEN, mode), {}, 'chmod 600')


def test_what_is_not_a_small_regular_file_is_refused(tmp_path):
  """A directory, a FIFO (which would block a plain open), a file too big
  to be a token, one that is missing: each a line, none hangs."""
  folder = tmp_path / 'folder'
  folder.mkdir(mode=0o700)
  fifo = tmp_path / 'fifo'
  os.mkfifo(fifo, 0o600)
  for path in (folder, fifo):
    _refused(str(path), {}, 'not a regular file')
  big = _token_file(tmp_path, TOKEN + 'x' * access.MAX_TOKEN_FILE_BYTES)
  _refused(big, {}, f'over {access.MAX_TOKEN_FILE_BYTES} bytes')
  _refused(str(tmp_path / 'missing'), {}, 'No such file')


def test_a_token_no_header_can_carry_is_refused_at_start(tmp_path):
  """Headers arrive as latin-1: a token with 'é' could never match, so
  every request would be refused; better to say so at start."""
  for token in (TOKEN[:20] + 'é', TOKEN[:20] + ' ' + TOKEN[20:],
                TOKEN[:20] + '\x07'):
    _refused(_token_file(tmp_path, token), {}, 'printable ASCII')
    _refused(None, {access.TOKEN_VARIABLE: token}, 'printable ASCII')


def test_obviously_guessable_tokens_are_refused_and_random_ones_pass():
  weak = {
      'secret': 'at least 16 characters',
      'a' * 16: '1 distinct characters',
      'ab' * 12: '2 distinct characters',
      'abcdefgh' * 3: 'a 8-character piece repeated',
      '0123456789abcdef0123': "continue a run such as '1234'",
      'password12345678': "continue a run such as '1234'",
  }
  for token, match in weak.items():
    message = _refused(None, {access.TOKEN_VARIABLE: token}, match)
    assert access.TOKEN_VARIABLE in message and 'secrets.token' in message
  for _ in range(200):
    for token in (secrets.token_urlsafe(32), secrets.token_hex(16)):
      assert access.read_token(None, {access.TOKEN_VARIABLE: token}) == token


def test_a_client_that_keeps_guessing_is_locked_out_for_a_while():
  attempts = access.FailedAttempts(failures=10, window=60, lockout=60)
  for second in range(9):
    attempts.failed('10.0.0.9', now=100 + second)
  assert attempts.locked('10.0.0.9', now=109) == 0
  attempts.failed('10.0.0.9', now=109)
  assert attempts.locked('10.0.0.9', now=109) == 60
  assert attempts.locked('10.0.0.9', now=139) == 30
  assert attempts.locked('10.0.0.8', now=139) == 0  # others are heard
  assert attempts.locked('10.0.0.9', now=169) == 0  # served its time


def test_failures_slide_out_of_the_window_and_success_forgets_them():
  attempts = access.FailedAttempts(failures=3, window=10, lockout=5)
  for now in (0, 6, 12, 18, 24):  # never 3 within 10 s
    attempts.failed('a', now)
  assert attempts.locked('a', 24) == 0
  attempts.failed('a', 25)
  assert attempts.locked('a', 25) == 5
  attempts.failed('b', 0)
  attempts.failed('b', 1)
  attempts.succeeded('b')
  attempts.failed('b', 2)
  assert attempts.locked('b', 2) == 0


def test_memory_is_bounded_by_forgetting_the_oldest_clients():
  attempts = access.FailedAttempts(failures=2, window=60, lockout=60,
                                   max_clients=100)
  attempts.failed('first', 0)
  attempts.failed('first', 1)
  for n in range(1000):
    attempts.failed(f'10.0.{n // 256}.{n % 256}', 2)
  assert len(attempts) == 100
  assert attempts.locked('first', 2) == 0  # forgotten: the oldest
  assert attempts.locked('10.0.3.231', 2) == 0
  attempts.failed('10.0.3.231', 3)
  assert attempts.locked('10.0.3.231', 3) == 60
