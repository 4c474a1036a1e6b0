"""Process groups, as Erlang's ``pg``: ``join`` a named group, and
``members`` lists every member on every connected node; ``broadcast``
sends one message to all of them. Membership is eventually consistent
across nodes; a particle leaves its groups when it ends."""

from wit_world.imports import pg as _wit
from componentize_py_types import Err

from . import codec as _codec
from .process import PlasmoidError, self_pid, send

__all__ = ["join", "leave", "members", "local_members", "which_groups", "broadcast"]


def join(group: str) -> bool:
    """Join ``group``; True if this particle was not in it yet. Raises
    ``PlasmoidError("refused", why)`` for a bad name, too many groups or
    a Cedar denial of ``join`` on ``Group::"<group>"``."""
    try:
        return _wit.join(group)
    except Err as e:
        raise PlasmoidError("refused", e.value) from None


def leave(group: str) -> bool:
    """Leave ``group``; whether this particle was in it."""
    return _wit.leave(group)


def members(group: str) -> list:
    """Every member of ``group``, on this node and the connected ones."""
    return _wit.members(group)


def local_members(group: str) -> list:
    """The members of ``group`` on this node."""
    return _wit.local_members(group)


def which_groups() -> list:
    """The groups with at least one member in the cluster."""
    return _wit.which_groups()


def broadcast(group: str, msg, shape=None) -> int:
    """Send ``msg`` to every member of ``group`` but this particle; returns
    how many sends were accepted (best effort, as in Erlang)."""
    me = self_pid()
    data = msg if isinstance(msg, (bytes, bytearray)) else _codec.shape_of(msg, shape).encode(msg)
    sent = 0
    for p in members(group):
        if p.equals(me):
            continue
        try:
            send(p, bytes(data))
            sent += 1
        except PlasmoidError:
            pass
    return sent
