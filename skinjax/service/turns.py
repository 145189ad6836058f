"""Slots taken in turn by requests: a freed slot goes to the waiting
request that has had the fewest so far, so that a one-photo request waits
for at most one decode per slot, not for another request's sixteen (the
event loop's thread only)."""

import asyncio
import collections
import contextlib


class Turns:
  """`slots` things done at a time, shared fairly between owners."""

  def __init__(self, slots: int):
    self._free = slots
    self._waiting = collections.OrderedDict()  # owner -> deque of futures
    self._granted = collections.Counter()  # slots each active owner had
    self._holding = collections.Counter()  # slots each owner holds now

  @contextlib.asynccontextmanager
  async def slot(self, owner):
    """Holds one slot for `owner` (any hashable: a request's id) while the
    block runs; waits for its turn."""
    await self._acquire(owner)
    try:
      yield
    finally:
      self._release(owner)

  async def _acquire(self, owner) -> None:
    if self._free > 0 and not self._waiting:
      self._free -= 1
      self._grant(owner)
      return
    turn = asyncio.get_running_loop().create_future()
    self._waiting.setdefault(owner, collections.deque()).append(turn)
    try:
      await turn
    except asyncio.CancelledError:
      if turn.done() and not turn.cancelled():
        self._release(owner)  # granted as it was cancelled: pass it on
      else:
        self._forget(owner, turn)
      raise

  def _grant(self, owner) -> None:
    self._granted[owner] += 1
    self._holding[owner] += 1

  def _forget(self, owner, turn) -> None:
    queue = self._waiting.get(owner)
    if queue is not None and turn in queue:
      queue.remove(turn)
      if not queue:
        del self._waiting[owner]
        self._drop_if_done(owner)

  def _drop_if_done(self, owner) -> None:
    if not self._holding[owner] and owner not in self._waiting:
      self._granted.pop(owner, None)
      self._holding.pop(owner, None)

  def _release(self, owner) -> None:
    """Passes the slot to the waiting owner granted the fewest so far (the
    longest waiting among equals)."""
    self._holding[owner] -= 1
    self._drop_if_done(owner)
    while self._waiting:
      chosen = min(self._waiting, key=lambda o: self._granted[o])
      queue = self._waiting[chosen]
      turn = queue.popleft()
      if not queue:
        del self._waiting[chosen]
      if not turn.done():
        self._grant(chosen)
        turn.set_result(None)
        return
      self._drop_if_done(chosen)
    self._free += 1
