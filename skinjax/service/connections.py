"""Deadlines and a cap for the service's connections, at the HTTP protocol
layer: an idle or slow socket costs a file descriptor and a timer, never a
place that a request being scored needs.

uvicorn closes a kept-alive connection that sends nothing, but nothing
else: headers sent a byte at a time, or a body trickled at a byte every
few seconds, hold a connection for as long as the client likes, and its
`limit_concurrency` counts every open socket, so a few dozen idle ones
turn every request away. `guarded_protocol` is uvicorn's h11 protocol with

- a header deadline: a request's headers must be complete within
  `header_timeout_s` of the connection opening, or of the previous
  response on a kept-alive connection;
- a minimum body rate: over every `window_s` seconds of a body, at least
  `min_bytes_per_s` bytes a second must arrive (while the service reads);
- a connection cap: at `max_connections`, the oldest connection with no
  request in progress is closed to make room, and with none such the new
  one is closed.

Closed connections are counted by reason (`Guard.closed`).
"""

import collections
import dataclasses

import h11
from uvicorn.protocols.http import h11_impl


@dataclasses.dataclass
class Guard:
  """The limits, and the connections of one server (oldest first)."""
  max_connections: int
  header_timeout_s: float
  min_bytes_per_s: float
  window_s: float
  open: dict = dataclasses.field(default_factory=dict)  # protocol -> None
  closed: collections.Counter = dataclasses.field(
      default_factory=collections.Counter)

  @classmethod
  def from_config(cls, serve) -> 'Guard':
    return cls(serve.max_connections, serve.header_timeout_s,
               serve.body_min_bytes_per_s, serve.body_rate_window_s)

  def statistics(self) -> dict:
    return {'open': len(self.open), 'closed': dict(sorted(
        self.closed.items()))}


def guarded_protocol(guard: Guard) -> type:
  """uvicorn's H11Protocol held to `guard`'s limits (uvicorn.Config's
  `http=`)."""

  class GuardedH11Protocol(h11_impl.H11Protocol):
    """One connection; `_timer` is its header deadline or body-rate check."""

    def connection_made(self, transport) -> None:
      super().connection_made(transport)
      self._timer, self._timer_kind = None, None
      self._body_bytes = 0  # of the current window
      if len(guard.open) >= guard.max_connections and not _evict_idle():
        guard.closed['max_connections'] += 1
        transport.close()
        return
      guard.open[self] = None
      self._await_headers()

    def connection_lost(self, exc) -> None:
      self._cancel_timer()
      guard.open.pop(self, None)
      super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
      super().data_received(data)
      if not self.transport.is_closing():
        self._follow(len(data))

    def on_response_complete(self) -> None:
      super().on_response_complete()
      if not self.transport.is_closing():
        self._follow(0)

    def _follow(self, received: int) -> None:
      """The timer for where the client is: headers (a deadline), a body
      (its rate) or nothing (the request has arrived; the service's own
      deadline holds)."""
      state = self.conn.their_state
      if state is h11.IDLE and not self._in_progress():
        if self._timer_kind != 'headers':
          self._await_headers()
      elif state is h11.SEND_BODY:
        if self._timer_kind != 'body':
          self._start_timer('body', guard.window_s, self._check_body_rate)
          self._body_bytes = 0
        else:
          self._body_bytes += received
      else:
        self._cancel_timer()

    def _in_progress(self) -> bool:
      return self.cycle is not None and not self.cycle.response_complete

    def _start_timer(self, kind: str, seconds: float, callback) -> None:
      self._cancel_timer()
      self._timer = self.loop.call_later(seconds, callback)
      self._timer_kind = kind

    def _await_headers(self) -> None:
      self._start_timer('headers', guard.header_timeout_s, self._headers_late)

    def _headers_late(self) -> None:
      self._timer, self._timer_kind = None, None
      if self.conn.their_state is h11.IDLE and not self._in_progress():
        self._close('header_timeout_s')

    def _check_body_rate(self) -> None:
      """Every window_s while a body arrives: enough of it came (or the
      service was not reading it: flow control), or the connection
      closes."""
      self._timer, self._timer_kind = None, None
      if self.conn.their_state is not h11.SEND_BODY:
        return
      if (not self.flow.read_paused and
          self._body_bytes < guard.min_bytes_per_s * guard.window_s):
        self._close('body_min_bytes_per_s')
        return
      self._body_bytes = 0
      self._start_timer('body', guard.window_s, self._check_body_rate)

    def _cancel_timer(self) -> None:
      if self._timer is not None:
        self._timer.cancel()
      self._timer, self._timer_kind = None, None

    def _close(self, reason: str) -> None:
      guard.closed[reason] += 1
      self._cancel_timer()
      guard.open.pop(self, None)
      if self._in_progress():
        self.cycle.disconnected = True  # the app sees http.disconnect
        self.cycle.message_event.set()
      self.transport.close()

  def _evict_idle() -> bool:
    """Closes the oldest connection with no request in progress."""
    for protocol in guard.open:
      if protocol.conn.their_state is h11.IDLE and not (
          protocol._in_progress()):  # pylint: disable=protected-access
        protocol._close('evicted')  # pylint: disable=protected-access
        return True
    return False

  return GuardedH11Protocol

