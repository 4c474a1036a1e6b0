"""Durable state: the node's store (``wasi:keyvalue`` and
``plasmoid:keyvalue/cas``), in Python terms, as the Rust SDK's ``store``.

Values are bytes on the wire. Give a codec shape (``shape=codec.u64``, a
``codec.struct``, ``codec.JSON``) and they are encoded and decoded with it,
so a Rust particle that stores a postcard ``u64`` and a Python one that
reads it with ``codec.u64`` agree. Without a shape, ``put`` takes bytes (or
what ``codec.shape_of`` infers) and ``get`` returns bytes.

A write has reached the node's store when the call returns, so state saved
before answering a request survives a crash and a ``kill -9`` of the node.
Cedar decides each access: by default a component may use the bucket named
after it, and no other. Refusals raise `StoreError` with ``kind``
``"denied"``, ``"no-store"``, ``"decode"`` or ``"other"``.

    store.put("audit", "entries", 12, codec.u64)
    n = store.get("audit", "entries", codec.u64)          # 12, or None
    store.increment("audit", "hits")                        # counters are text
    store.update("audit", "total", lambda t: (t or 0) + 5, codec.u64)
"""

from typing import Callable, Dict, List, Optional, Tuple

from componentize_py_types import Err

try:
    from wit_world.imports import atomics as _atomics
    from wit_world.imports import batch as _batch
    from wit_world.imports import cas as _cas
    from wit_world.imports import store as _store
except ImportError as e:
    raise ImportError("plasmoid.store needs the `particle-kv` world (or `particle-kv-http`): build with `-w particle-kv-http`") from e

from . import codec as _codec
from .process import PlasmoidError

__all__ = [
    "StoreError", "get", "put", "delete", "exists", "increment", "compare_and_swap",
    "update", "get_many", "set_many", "delete_many", "keys", "UPDATE_TRIES", "MAX_KEYS",
]

UPDATE_TRIES = 100
"""Swaps `update` tries before it gives up."""

MAX_KEYS = 100_000
"""The most keys `keys` collects; past it, it raises rather than grow."""


class StoreError(PlasmoidError):
    """A store call that failed: ``kind`` is ``"denied"`` (the policy),
    ``"no-store"`` (the node has none), ``"decode"`` (the value is not of
    the shape asked for) or ``"other"`` (a size cap, a timeout, I/O)."""


def _raise(e: Err, bucket: str):
    v = e.value
    if isinstance(v, _store.Error_AccessDenied):
        raise StoreError("denied", f"access to bucket `{bucket}` denied by policy") from None
    if isinstance(v, _store.Error_NoSuchStore):
        raise StoreError("no-store", "this node has no store") from None
    raise StoreError("other", getattr(v, "value", str(v))) from None


# Buckets opened so far: one `open` (and one policy decision) each.
_open: Dict[str, _store.Bucket] = {}


def _bucket(name: str) -> _store.Bucket:
    b = _open.get(name)
    if b is None:
        try:
            b = _store.open(name)
        except Err as e:
            _raise(e, name)
        _open[name] = b
    return b


def _encode(value, shape) -> bytes:
    if shape is None and isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return _codec.shape_of(value, shape).encode(value)


def _decode(data: bytes, shape, bucket: str, key: str):
    if shape is None:
        return data
    try:
        return shape.decode(data)
    except _codec.DecodeError as e:
        raise StoreError("decode", f"`{key}` in `{bucket}`: {e}") from None


def get(bucket: str, key: str, shape=None):
    """The value under ``key`` (decoded with ``shape``), or None."""
    try:
        data = _bucket(bucket).get(key)
    except Err as e:
        _raise(e, bucket)
    return None if data is None else _decode(data, shape, bucket, key)


def put(bucket: str, key: str, value, shape=None) -> None:
    """Store ``value`` under ``key``, durably."""
    try:
        _bucket(bucket).set(key, _encode(value, shape))
    except Err as e:
        _raise(e, bucket)


def delete(bucket: str, key: str) -> None:
    """Remove ``key`` (no error when it is absent)."""
    try:
        _bucket(bucket).delete(key)
    except Err as e:
        _raise(e, bucket)


def exists(bucket: str, key: str) -> bool:
    try:
        return _bucket(bucket).exists(key)
    except Err as e:
        _raise(e, bucket)


def increment(bucket: str, key: str, delta: int = 1) -> int:
    """Add ``delta`` to the counter under ``key`` (0 when absent); the new
    count. Counters are decimal text, as the Rust SDK's."""
    try:
        return _atomics.increment(_bucket(bucket), key, delta)
    except Err as e:
        _raise(e, bucket)


def compare_and_swap(bucket: str, key: str, expected, new, shape=None) -> bool:
    """Set ``key`` to ``new`` if it now holds ``expected`` (None: absent),
    in one indivisible step; whether it swapped. Values compare as their
    encoded bytes."""
    old = None if expected is None else _encode(expected, shape)
    try:
        return _cas.compare_and_swap(_bucket(bucket), key, old, _encode(new, shape))
    except Err as e:
        _raise(e, bucket)


def update(bucket: str, key: str, f: Callable, shape=None):
    """Replace ``key``'s value with ``f(old)`` (old: None when absent),
    retrying on a lost race up to `UPDATE_TRIES` times; the value stored.
    ``f`` may run more than once."""
    b = _bucket(bucket)
    for _ in range(UPDATE_TRIES):
        try:
            old = b.get(key)
            new = f(None if old is None else _decode(old, shape, bucket, key))
            if _cas.compare_and_swap(b, key, old, _encode(new, shape)):
                return new
        except Err as e:
            _raise(e, bucket)
    raise StoreError("other", f"`{key}` in `{bucket}` changed under every one of {UPDATE_TRIES} tries")


def get_many(bucket: str, keys: List[str], shape=None) -> List:
    """The values of ``keys``, in order (None for an absent key)."""
    try:
        got = _batch.get_many(_bucket(bucket), list(keys))
    except Err as e:
        _raise(e, bucket)
    return [None if kv is None else _decode(kv[1], shape, bucket, kv[0]) for kv in got]


def set_many(bucket: str, entries, shape=None) -> None:
    """Store every ``(key, value)`` (a list of pairs or a dict) in one
    durable write."""
    items = entries.items() if isinstance(entries, dict) else entries
    pairs: List[Tuple[str, bytes]] = [(k, _encode(v, shape)) for k, v in items]
    try:
        _batch.set_many(_bucket(bucket), pairs)
    except Err as e:
        _raise(e, bucket)


def delete_many(bucket: str, keys: List[str]) -> None:
    try:
        _batch.delete_many(_bucket(bucket), list(keys))
    except Err as e:
        _raise(e, bucket)


def keys(bucket: str, limit: int = MAX_KEYS) -> List[str]:
    """Every key of the bucket, sorted, each once; a `StoreError` rather
    than more than ``limit`` of them."""
    b = _bucket(bucket)
    seen = set()
    cursor: Optional[int] = None
    while True:
        try:
            page = b.list_keys(cursor)
        except Err as e:
            _raise(e, bucket)
        seen.update(page.keys)
        if len(seen) > limit:
            raise StoreError("other", f"bucket `{bucket}` has more than {limit} keys; pass a larger limit")
        if page.cursor is None:
            return sorted(seen)
        cursor = page.cursor
