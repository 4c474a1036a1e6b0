"""Message codecs: postcard, byte for byte as the Rust SDK writes it, and JSON.

Rust particles encode messages with postcard 1.x (serde's data model, no
framing): integers as LEB128 varints (signed ones zigzagged first), ``u8`` as
one byte, strings and sequences with a varint length, ``Option`` as 0 or 1
then the value, an enum as its variant index then its fields, a struct as
its fields in order. A Rust type is described here once, with the shapes
below, and its values encode and decode exactly as the Rust side does::

    CounterRequest = enum("CounterRequest", Get=None, Increment=None, Add=u64, Version=None)
    CounterRequest.encode(CounterRequest.Add(300))   # b"\\x02\\xac\\x02"

Decoding refuses trailing bytes, as the Rust SDK does: that is how a
gen_server tells a cast from any other data message. This module does not
touch the runtime, so it runs (and is tested) under a plain CPython too.
"""

import json as _json
import struct as _struct

__all__ = [
    "DecodeError", "Shape", "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64",
    "f32", "f64", "boolean", "string", "byte_buf", "unit", "option", "seq", "tuple_",
    "map_", "struct", "enum", "JSON", "RAW",
]

# Longest sequence or string a decoder accepts (the runtime's messages are
# bounded far below this; a corrupt length must not allocate gigabytes).
MAX_LEN = 16 << 20


class DecodeError(ValueError):
    """The bytes are not a value of the expected shape."""


class Shape:
    """A postcard type: ``encode(value) -> bytes`` and ``decode(bytes) -> value``."""

    name = "shape"

    def write(self, value, out: bytearray) -> None:
        raise NotImplementedError

    def read(self, buf: bytes, pos: int):
        raise NotImplementedError

    def encode(self, value) -> bytes:
        out = bytearray()
        self.write(value, out)
        return bytes(out)

    def decode(self, buf: bytes):
        value, pos = self.read(bytes(buf), 0)
        if pos != len(buf):
            raise DecodeError(f"{len(buf) - pos} bytes left over after a {self.name}")
        return value

    def __repr__(self) -> str:
        return self.name


def _varint(n: int, out: bytearray) -> None:
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return


def _read_varint(buf: bytes, pos: int, bits: int):
    n, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise DecodeError("the bytes end inside a varint")
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if shift >= bits:
            raise DecodeError("a varint is longer than its type allows")
    if n >> bits:
        raise DecodeError(f"a varint is out of range for {bits} bits")
    return n, pos


class _Unsigned(Shape):
    def __init__(self, bits: int):
        self.bits, self.name = bits, f"u{bits}"

    def write(self, value, out):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << self.bits:
            raise ValueError(f"{value!r} is not a {self.name}")
        if self.bits == 8:
            out.append(value)
        else:
            _varint(value, out)

    def read(self, buf, pos):
        if self.bits == 8:
            if pos >= len(buf):
                raise DecodeError("the bytes end before a u8")
            return buf[pos], pos + 1
        return _read_varint(buf, pos, self.bits)


class _Signed(Shape):
    def __init__(self, bits: int):
        self.bits, self.name = bits, f"i{bits}"

    def write(self, value, out):
        lim = 1 << (self.bits - 1)
        if not isinstance(value, int) or isinstance(value, bool) or not -lim <= value < lim:
            raise ValueError(f"{value!r} is not an {self.name}")
        if self.bits == 8:
            out.append(value & 0xFF)
        else:
            _varint(((value << 1) ^ (value >> (self.bits - 1))) & ((1 << self.bits) - 1), out)

    def read(self, buf, pos):
        if self.bits == 8:
            if pos >= len(buf):
                raise DecodeError("the bytes end before an i8")
            b = buf[pos]
            return (b - 256 if b > 127 else b), pos + 1
        n, pos = _read_varint(buf, pos, self.bits)
        return (n >> 1) ^ -(n & 1), pos


class _Float(Shape):
    def __init__(self, fmt: str, name: str):
        self.fmt, self.name, self.size = fmt, name, _struct.calcsize(fmt)

    def write(self, value, out):
        out += _struct.pack(self.fmt, float(value))

    def read(self, buf, pos):
        if pos + self.size > len(buf):
            raise DecodeError(f"the bytes end before an {self.name}")
        return _struct.unpack_from(self.fmt, buf, pos)[0], pos + self.size


class _Bool(Shape):
    name = "bool"

    def write(self, value, out):
        out.append(1 if value else 0)

    def read(self, buf, pos):
        if pos >= len(buf) or buf[pos] > 1:
            raise DecodeError("not a bool")
        return buf[pos] == 1, pos + 1


def _read_len(buf, pos):
    n, pos = _read_varint(buf, pos, 64)
    if n > MAX_LEN:
        raise DecodeError(f"a length of {n} is past the limit")
    return n, pos


class _Str(Shape):
    name = "String"

    def write(self, value, out):
        data = value.encode("utf-8")
        _varint(len(data), out)
        out += data

    def read(self, buf, pos):
        n, pos = _read_len(buf, pos)
        if pos + n > len(buf):
            raise DecodeError("the bytes end inside a string")
        try:
            return buf[pos:pos + n].decode("utf-8"), pos + n
        except UnicodeDecodeError as e:
            raise DecodeError(f"a string is not UTF-8: {e}") from None


class _Bytes(Shape):
    name = "Vec<u8>"

    def write(self, value, out):
        _varint(len(value), out)
        out += bytes(value)

    def read(self, buf, pos):
        n, pos = _read_len(buf, pos)
        if pos + n > len(buf):
            raise DecodeError("the bytes end inside a byte string")
        return bytes(buf[pos:pos + n]), pos + n


class _Unit(Shape):
    name = "()"

    def write(self, value, out):
        pass

    def read(self, buf, pos):
        return None, pos


u8, u16, u32, u64 = _Unsigned(8), _Unsigned(16), _Unsigned(32), _Unsigned(64)
i8, i16, i32, i64 = _Signed(8), _Signed(16), _Signed(32), _Signed(64)
f32, f64 = _Float("<f", "f32"), _Float("<d", "f64")
boolean, string, byte_buf, unit = _Bool(), _Str(), _Bytes(), _Unit()


class option(Shape):
    """``Option<T>``: ``None`` or a value of ``inner``."""

    def __init__(self, inner: Shape):
        self.inner, self.name = inner, f"Option<{inner.name}>"

    def write(self, value, out):
        if value is None:
            out.append(0)
        else:
            out.append(1)
            self.inner.write(value, out)

    def read(self, buf, pos):
        if pos >= len(buf) or buf[pos] > 1:
            raise DecodeError(f"not an {self.name}")
        if buf[pos] == 0:
            return None, pos + 1
        return self.inner.read(buf, pos + 1)


class seq(Shape):
    """``Vec<T>`` as a Python list."""

    def __init__(self, inner: Shape):
        self.inner, self.name = inner, f"Vec<{inner.name}>"

    def write(self, value, out):
        items = list(value)
        _varint(len(items), out)
        for v in items:
            self.inner.write(v, out)

    def read(self, buf, pos):
        n, pos = _read_len(buf, pos)
        items = []
        for _ in range(n):
            v, pos = self.inner.read(buf, pos)
            items.append(v)
        return items, pos


class tuple_(Shape):
    """A Rust tuple, as a Python tuple."""

    def __init__(self, *items: Shape):
        self.items = items
        self.name = "(" + ", ".join(i.name for i in items) + ")"

    def write(self, value, out):
        if len(value) != len(self.items):
            raise ValueError(f"{value!r} is not a {self.name}")
        for shape, v in zip(self.items, value):
            shape.write(v, out)

    def read(self, buf, pos):
        values = []
        for shape in self.items:
            v, pos = shape.read(buf, pos)
            values.append(v)
        return tuple(values), pos


class map_(Shape):
    """``BTreeMap<K, V>`` as a dict; written in key order, as Rust writes it."""

    def __init__(self, key: Shape, value: Shape):
        self.key, self.value = key, value
        self.name = f"BTreeMap<{key.name}, {value.name}>"

    def write(self, value, out):
        _varint(len(value), out)
        for k in sorted(value):
            self.key.write(k, out)
            self.value.write(value[k], out)

    def read(self, buf, pos):
        n, pos = _read_len(buf, pos)
        d = {}
        for _ in range(n):
            k, pos = self.key.read(buf, pos)
            v, pos = self.value.read(buf, pos)
            d[k] = v
        return d, pos


class _Record:
    """Base of the classes `struct` and `enum` make: fields by name and in order."""

    _fields: tuple = ()

    def __init__(self, *args, **kwargs):
        if len(args) > len(self._fields):
            raise TypeError(f"{type(self).__qualname__} takes {len(self._fields)} fields")
        values = dict(zip(self._fields, args))
        for k, v in kwargs.items():
            if k not in self._fields or k in values:
                raise TypeError(f"{type(self).__qualname__}: unexpected or repeated field {k!r}")
            values[k] = v
        missing = [f for f in self._fields if f not in values]
        if missing:
            raise TypeError(f"{type(self).__qualname__} is missing {', '.join(missing)}")
        for f in self._fields:
            object.__setattr__(self, f, values[f])

    def __eq__(self, other):
        return type(self) is type(other) and all(
            getattr(self, f) == getattr(other, f) for f in self._fields)

    def __hash__(self):
        return hash((type(self).__qualname__,) + tuple(
            repr(getattr(self, f)) for f in self._fields))

    def __repr__(self):
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__qualname__}({inner})"


class struct(Shape):
    """A Rust struct: ``struct("Order", id=u64, gateway=string, ...)``.

    Fields are given in the Rust declaration order. ``Point = struct(...)``
    is the shape; ``Point.of(...)`` (or ``Point(x=1, y=2)``) makes a value.
    """

    def __init__(self, name: str, **fields: Shape):
        self.name, self.fields = name, fields
        self.cls = type(name, (_Record,), {
            "_fields": tuple(fields), "__match_args__": tuple(fields), "_schema": self})

    def __call__(self, *args, **kwargs):
        return self.cls(*args, **kwargs)

    of = __call__

    def write(self, value, out):
        for f, shape in self.fields.items():
            shape.write(getattr(value, f), out)

    def read(self, buf, pos):
        values = {}
        for f, shape in self.fields.items():
            values[f], pos = shape.read(buf, pos)
        return self.cls(**values), pos


class enum(Shape):
    """A Rust enum; variants in declaration order, each one of:

    - ``None``: a unit variant, a value itself (``CounterRequest.Get``);
    - a shape: a newtype variant (``CounterRequest.Add(5)``, field ``value``);
    - a tuple of shapes: a tuple variant (fields ``_0``, ``_1``, ...);
    - a dict of shapes: a struct variant (``Reply.Settled(from_balance=1, to_balance=2)``).

    Values work with ``match``: ``case CounterRequest.Add(n):``.
    """

    def __init__(self, enum_name: str, **variants):
        self.name = enum_name
        self.variants = []
        for index, (vname, payload) in enumerate(variants.items()):
            if payload is None:
                fields = {}
            elif isinstance(payload, Shape):
                fields = {"value": payload}
            elif isinstance(payload, tuple):
                fields = {f"_{i}": s for i, s in enumerate(payload)}
            elif isinstance(payload, dict):
                fields = dict(payload)
            else:
                raise TypeError(f"variant {vname}: give None, a shape, a tuple or a dict")
            cls = type(vname, (_Record,), {
                "_fields": tuple(fields), "__match_args__": tuple(fields),
                "_schema": self, "_index": index, "_shapes": fields,
                "__qualname__": f"{enum_name}.{vname}"})
            if not fields:
                cls.__repr__ = lambda self, n=f"{enum_name}.{vname}": n
            value = cls() if not fields else cls
            setattr(self, vname, value)
            self.variants.append(cls)

    def write(self, value, out):
        cls = type(value)
        if getattr(cls, "_schema", None) is not self:
            raise ValueError(f"{value!r} is not a {self.name}")
        _varint(cls._index, out)
        for f, shape in cls._shapes.items():
            shape.write(getattr(value, f), out)

    def read(self, buf, pos):
        index, pos = _read_varint(buf, pos, 32)
        if index >= len(self.variants):
            raise DecodeError(f"{index} is not a variant of {self.name}")
        cls = self.variants[index]
        values = {}
        for f, shape in cls._shapes.items():
            values[f], pos = shape.read(buf, pos)
        return cls(**values), pos


class _Json(Shape):
    """JSON text (UTF-8): for particles that agree on it, such as Python and
    JS ones, or a Rust one decoding with serde_json."""

    name = "JSON"

    def encode(self, value) -> bytes:
        return _json.dumps(value, separators=(",", ":")).encode("utf-8")

    def decode(self, buf: bytes):
        try:
            return _json.loads(bytes(buf).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise DecodeError(f"not JSON: {e}") from None


class _Raw(Shape):
    """The bytes as they are."""

    name = "bytes"

    def encode(self, value) -> bytes:
        return bytes(value)

    def decode(self, buf: bytes):
        return bytes(buf)


JSON, RAW = _Json(), _Raw()


def shape_of(value, given=None) -> Shape:
    """The shape to encode ``value`` with: ``given``, else the one its class
    was made by (`struct`, `enum`), else raw for bytes."""
    if given is not None:
        return given
    schema = getattr(type(value), "_schema", None)
    if schema is not None:
        return schema
    if isinstance(value, (bytes, bytearray, memoryview)):
        return RAW
    raise TypeError(
        f"cannot tell how to encode {value!r}: pass a shape (e.g. request=codec.u64 or codec.JSON)")
