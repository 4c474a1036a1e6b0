// Message codecs: postcard, byte for byte as the Rust SDK writes it, and JSON.
//
// The same shapes as the Python SDK (sdk-py/plasmoid/codec.py): a Rust type
// is described once and its values encode and decode as the Rust side does.
// Integers up to u32 are Numbers; u64/i64 decode to a Number when it is
// exact (below 2^53) and to a BigInt otherwise, and encode from either.
// Decoding refuses trailing bytes, as the Rust SDK does.

export class DecodeError extends Error {}

const MAX_LEN = 16 << 20;

function pushVarint(out, n) {
  let v = BigInt(n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
}

function readVarint(r, bits) {
  let n = 0n;
  let shift = 0n;
  for (;;) {
    if (r.pos >= r.buf.length) throw new DecodeError('the bytes end inside a varint');
    const b = r.buf[r.pos++];
    n |= BigInt(b & 0x7f) << shift;
    if (!(b & 0x80)) break;
    shift += 7n;
    if (shift >= BigInt(bits)) throw new DecodeError('a varint is longer than its type allows');
  }
  if (n >> BigInt(bits)) throw new DecodeError(`a varint is out of range for ${bits} bits`);
  return n;
}

const exact = (big) => (big <= BigInt(Number.MAX_SAFE_INTEGER) && big >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big);

class Shape {
  encode(value) {
    const out = [];
    this.write(value, out);
    return Uint8Array.from(out);
  }
  decode(bytes) {
    const r = { buf: bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes), pos: 0 };
    const v = this.read(r);
    if (r.pos !== r.buf.length) throw new DecodeError(`${r.buf.length - r.pos} bytes left over after a ${this.name}`);
    return v;
  }
}

function int(name, bits, signed) {
  const s = new Shape();
  s.name = name;
  const lim = 1n << BigInt(bits);
  s.write = (value, out) => {
    if (typeof value !== 'number' && typeof value !== 'bigint') throw new TypeError(`${value} is not a ${name}`);
    if (typeof value === 'number' && !Number.isInteger(value)) throw new TypeError(`${value} is not a ${name}`);
    let v = BigInt(value);
    if (signed ? v < -(lim >> 1n) || v >= lim >> 1n : v < 0n || v >= lim) throw new RangeError(`${value} is not a ${name}`);
    if (bits === 8) {
      out.push(Number(signed && v < 0n ? v + 256n : v));
      return;
    }
    if (signed) v = v >= 0n ? v << 1n : ((-v) << 1n) - 1n;
    pushVarint(out, v);
  };
  s.read = (r) => {
    if (bits === 8) {
      if (r.pos >= r.buf.length) throw new DecodeError(`the bytes end before a ${name}`);
      const b = r.buf[r.pos++];
      return signed && b > 127 ? b - 256 : b;
    }
    let v = readVarint(r, bits);
    if (signed) v = v & 1n ? -((v + 1n) >> 1n) : v >> 1n;
    return exact(v);
  };
  return s;
}

export const u8 = int('u8', 8, false), u16 = int('u16', 16, false), u32 = int('u32', 32, false), u64 = int('u64', 64, false);
export const i8 = int('i8', 8, true), i16 = int('i16', 16, true), i32 = int('i32', 32, true), i64 = int('i64', 64, true);

function float(name, size) {
  const s = new Shape();
  s.name = name;
  s.write = (value, out) => {
    const dv = new DataView(new ArrayBuffer(size));
    size === 4 ? dv.setFloat32(0, value, true) : dv.setFloat64(0, value, true);
    out.push(...new Uint8Array(dv.buffer));
  };
  s.read = (r) => {
    if (r.pos + size > r.buf.length) throw new DecodeError(`the bytes end before an ${name}`);
    const dv = new DataView(r.buf.buffer, r.buf.byteOffset + r.pos, size);
    r.pos += size;
    return size === 4 ? dv.getFloat32(0, true) : dv.getFloat64(0, true);
  };
  return s;
}
export const f32 = float('f32', 4), f64 = float('f64', 8);

function simple(name, write, read) {
  const s = new Shape();
  s.name = name;
  s.write = write;
  s.read = read;
  return s;
}

function readLen(r) {
  const n = Number(readVarint(r, 64));
  if (n > MAX_LEN) throw new DecodeError(`a length of ${n} is past the limit`);
  return n;
}

export const bool = simple('bool', (v, out) => out.push(v ? 1 : 0), (r) => {
  const b = r.buf[r.pos++];
  if (b !== 0 && b !== 1) throw new DecodeError('not a bool');
  return b === 1;
});

export const unit = simple('()', () => {}, () => null);

// QuickJS has no TextEncoder/TextDecoder: a strict UTF-8 of its own then.
function encodeUtf8(text) {
  const out = [];
  for (const ch of text) {
    let c = ch.codePointAt(0);
    if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return Uint8Array.from(out);
}

function decodeUtf8(b) {
  let s = '';
  for (let i = 0; i < b.length;) {
    const x = b[i];
    const n = x < 0x80 ? 1 : x >= 0xc2 && x < 0xe0 ? 2 : x >= 0xe0 && x < 0xf0 ? 3 : x >= 0xf0 && x < 0xf5 ? 4 : 0;
    if (n === 0 || i + n > b.length) throw new DecodeError('a string is not UTF-8');
    let c = n === 1 ? x : x & (0xff >> (n + 1));
    for (let j = 1; j < n; j++) {
      if ((b[i + j] & 0xc0) !== 0x80) throw new DecodeError('a string is not UTF-8');
      c = (c << 6) | (b[i + j] & 63);
    }
    if ((n === 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) || (n === 4 && (c < 0x10000 || c > 0x10ffff))) {
      throw new DecodeError('a string is not UTF-8');
    }
    s += String.fromCodePoint(c);
    i += n;
  }
  return s;
}

const utf8 = typeof TextEncoder === 'undefined' ? { encode: encodeUtf8 } : new TextEncoder();
const fromUtf8 = typeof TextDecoder === 'undefined' ? { decode: decodeUtf8 } : new TextDecoder('utf-8', { fatal: true });
/** UTF-8 text to bytes and back, under every engine. */
export const text = { encode: (s) => utf8.encode(s), decode: (b) => fromUtf8.decode(b instanceof Uint8Array ? b : Uint8Array.from(b)) };

export const string = simple('String', (v, out) => {
  const b = utf8.encode(v);
  pushVarint(out, b.length);
  for (const x of b) out.push(x);
}, (r) => {
  const n = readLen(r);
  if (r.pos + n > r.buf.length) throw new DecodeError('the bytes end inside a string');
  let s;
  try { s = fromUtf8.decode(r.buf.subarray(r.pos, r.pos + n)); } catch (e) { throw new DecodeError('a string is not UTF-8'); }
  r.pos += n;
  return s;
});

export const bytes = simple('Vec<u8>', (v, out) => {
  pushVarint(out, v.length);
  for (const x of v) out.push(x);
}, (r) => {
  const n = readLen(r);
  if (r.pos + n > r.buf.length) throw new DecodeError('the bytes end inside a byte string');
  const b = r.buf.slice(r.pos, r.pos + n);
  r.pos += n;
  return b;
});

export function option(inner) {
  return simple(`Option<${inner.name}>`, (v, out) => {
    if (v === null || v === undefined) out.push(0);
    else { out.push(1); inner.write(v, out); }
  }, (r) => {
    const b = r.buf[r.pos++];
    if (b === 0) return null;
    if (b !== 1) throw new DecodeError(`not an Option<${inner.name}>`);
    return inner.read(r);
  });
}

export function seq(inner) {
  return simple(`Vec<${inner.name}>`, (v, out) => {
    pushVarint(out, v.length);
    for (const x of v) inner.write(x, out);
  }, (r) => {
    const n = readLen(r);
    const items = [];
    for (let i = 0; i < n; i++) items.push(inner.read(r));
    return items;
  });
}

export function tuple(...items) {
  return simple(`(${items.map((i) => i.name).join(', ')})`, (v, out) => {
    items.forEach((s, i) => s.write(v[i], out));
  }, (r) => items.map((s) => s.read(r)));
}

/** BTreeMap<K, V> as a Map (or an object when written), in key order. */
export function map(key, value) {
  return simple(`BTreeMap<${key.name}, ${value.name}>`, (v, out) => {
    const entries = (v instanceof Map ? [...v.entries()] : Object.entries(v)).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    pushVarint(out, entries.length);
    for (const [k, x] of entries) { key.write(k, out); value.write(x, out); }
  }, (r) => {
    const n = readLen(r);
    const m = new Map();
    for (let i = 0; i < n; i++) { const k = key.read(r); m.set(k, value.read(r)); }
    return m;
  });
}

/** A Rust struct: fields in declaration order, as a plain object. */
export function struct(name, fields) {
  const names = Object.keys(fields);
  return simple(name, (v, out) => {
    for (const f of names) fields[f].write(v[f], out);
  }, (r) => {
    const o = {};
    for (const f of names) o[f] = fields[f].read(r);
    return o;
  });
}

/** A variant value knows its enum (not enumerable: JSON and equality ignore it). */
function tagged(shape, value) {
  Object.defineProperty(value, 'shape', { value: shape, enumerable: false });
  return value;
}

/**
 * A Rust enum; variants in declaration order, each `null` (unit), a shape
 * (newtype), an array of shapes (tuple) or an object of shapes (struct).
 * Values are `{ tag: 'Add', value: 5 }` (tuple: `value` is an array; struct:
 * the fields sit beside `tag`). `E.Add(5)` and `E.Get` make them.
 */
export function enumOf(name, variants) {
  const list = Object.entries(variants);
  const s = simple(name, (v, out) => {
    const i = list.findIndex(([t]) => t === v.tag);
    if (i < 0) throw new TypeError(`${JSON.stringify(v.tag)} is not a variant of ${name}`);
    pushVarint(out, i);
    const p = list[i][1];
    if (p === null) return;
    if (p instanceof Shape) p.write(v.value, out);
    else if (Array.isArray(p)) p.forEach((x, j) => x.write(v.value[j], out));
    else for (const [f, x] of Object.entries(p)) x.write(v[f], out);
  }, (r) => {
    const i = Number(readVarint(r, 32));
    if (i >= list.length) throw new DecodeError(`${i} is not a variant of ${name}`);
    const [tag, p] = list[i];
    if (p === null) return tagged(s, { tag });
    if (p instanceof Shape) return tagged(s, { tag, value: p.read(r) });
    if (Array.isArray(p)) return tagged(s, { tag, value: p.map((x) => x.read(r)) });
    const o = { tag };
    for (const [f, x] of Object.entries(p)) o[f] = x.read(r);
    return tagged(s, o);
  });
  for (const [tag, p] of list) {
    s[tag] = p === null ? Object.freeze(tagged(s, { tag }))
      : p instanceof Shape || Array.isArray(p) ? (value) => tagged(s, { tag, value })
      : (fields) => tagged(s, { tag, ...fields });
  }
  return s;
}

/** JSON text in UTF-8. */
export const JSON_ = simple('JSON', null, null);
JSON_.encode = (v) => utf8.encode(JSON.stringify(v));
JSON_.decode = (b) => {
  try { return JSON.parse(fromUtf8.decode(b instanceof Uint8Array ? b : Uint8Array.from(b))); } catch (e) { throw new DecodeError(`not JSON: ${e.message}`); }
};
export { JSON_ as JSON };

/** The bytes as they are. */
export const raw = simple('bytes', null, null);
raw.encode = (v) => (v instanceof Uint8Array ? v : Uint8Array.from(v));
raw.decode = (b) => (b instanceof Uint8Array ? b : Uint8Array.from(b));

/** The shape to encode `value` with: `given`, the one that made it, or raw bytes. */
export function shapeOf(value, given) {
  if (given) return given;
  if (value && value.shape instanceof Shape) return value.shape;
  if (value instanceof Uint8Array || Array.isArray(value)) return raw;
  throw new TypeError('cannot tell how to encode this value: pass a shape (e.g. codec.u64 or codec.JSON)');
}

export { Shape };
