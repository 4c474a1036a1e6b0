// Durable state: the node's store (wasi:keyvalue and plasmoid:keyvalue/cas)
// in JavaScript terms, as the Rust SDK's `store` and the Python SDK's.
//
// Values are bytes on the wire. Give a codec shape (`codec.u64`, a
// `codec.struct`, `codec.JSON`) and they are encoded and decoded with it, so
// a Rust particle that stores a postcard u64 and a JS one that reads it with
// `codec.u64` agree. Without a shape, `put` takes a Uint8Array (or what
// `codec.shapeOf` infers) and `get` returns a Uint8Array.
//
// A write has reached the node's store when the call returns. Cedar decides
// each access: by default a component may use the bucket named after it.
// Refusals throw StoreError with `kind` 'denied', 'no-store', 'decode' or
// 'other'. Counters (`increment`) are stored as decimal text, as the Rust
// SDK's (read one with `increment(b, k, 0)`), and are Numbers under both
// engines, exact below 2^53.
//
//   store.put('audit', 'entries', 12, codec.u64);
//   const n = store.get('audit', 'entries', codec.u64); // 12, or null
//   store.update('audit', 'total', (t) => (t ?? 0) + 5, codec.u64);

import { open } from 'wasi:keyvalue/store@0.2.0-draft';
import { increment as witIncrement } from 'wasi:keyvalue/atomics@0.2.0-draft';
import { getMany as witGetMany, setMany as witSetMany, deleteMany as witDeleteMany } from 'wasi:keyvalue/batch@0.2.0-draft';
import { compareAndSwap } from 'plasmoid:keyvalue/cas@0.1.0';
import { makeRef } from 'plasmoid:runtime/process@0.1.0';
import * as codec from './codec.js';

/** Swaps `update` tries before it gives up. */
export const UPDATE_TRIES = 100;
/** The most keys `keys` collects; past it, it throws rather than grow. */
export const MAX_KEYS = 100000;

export class StoreError extends Error {
  constructor(kind, detail) {
    super(`store: ${kind}: ${detail}`);
    this.name = 'StoreError';
    this.kind = kind;
    this.detail = detail;
  }
}

const none = (v) => v === undefined || v === null;
let bigU64;
const u64 = (n) => {
  if (bigU64 === undefined) bigU64 = typeof makeRef() === 'bigint';
  return bigU64 ? BigInt(n) : Number(n);
};

/** Run a store call; rethrow its WIT error as a StoreError. */
function checked(bucket, f) {
  try {
    return f();
  } catch (e) {
    const p = e && e.payload;
    if (!(p && typeof p === 'object' && 'tag' in p)) throw e;
    if (p.tag === 'access-denied') throw new StoreError('denied', `access to bucket \`${bucket}\` denied by policy`);
    if (p.tag === 'no-such-store') throw new StoreError('no-store', 'this node has no store');
    throw new StoreError('other', String(p.val));
  }
}

// Buckets opened so far: one `open` (and one policy decision) each.
const opened = new Map();
function bucketOf(name) {
  let b = opened.get(name);
  if (b === undefined) {
    b = checked(name, () => open(name));
    opened.set(name, b);
  }
  return b;
}

const encode = (value, shape) => (none(shape) && value instanceof Uint8Array ? value : codec.shapeOf(value, shape).encode(value));
function decode(data, shape, bucket, key) {
  const bytes = data instanceof Uint8Array ? data : Uint8Array.from(data);
  if (none(shape)) return bytes;
  try {
    return shape.decode(bytes);
  } catch (e) {
    if (e instanceof codec.DecodeError) throw new StoreError('decode', `\`${key}\` in \`${bucket}\`: ${e.message}`);
    throw e;
  }
}

/** The value under `key` (decoded with `shape`), or null. */
export function get(bucket, key, shape) {
  const data = checked(bucket, () => bucketOf(bucket).get(key));
  return none(data) ? null : decode(data, shape, bucket, key);
}
/** Store `value` under `key`, durably. */
export function put(bucket, key, value, shape) {
  const bytes = encode(value, shape);
  checked(bucket, () => bucketOf(bucket).set(key, bytes));
}
/** Remove `key` (no error when it is absent). */
export const del = (bucket, key) => checked(bucket, () => bucketOf(bucket).delete(key));
export { del as delete };
export const exists = (bucket, key) => checked(bucket, () => bucketOf(bucket).exists(key));
/** Add `delta` to the counter under `key` (0 when absent); the new count. */
export const increment = (bucket, key, delta = 1) =>
  Number(checked(bucket, () => witIncrement(bucketOf(bucket), key, u64(delta))));

/** Set `key` to `next` if it now holds `expected` (null: absent), in one step; whether it swapped. */
export function compareAndSwap_(bucket, key, expected, next, shape) {
  const old = none(expected) ? undefined : encode(expected, shape);
  const bytes = encode(next, shape);
  return checked(bucket, () => compareAndSwap(bucketOf(bucket), key, old, bytes));
}
export { compareAndSwap_ as compareAndSwap };

/** Replace `key`'s value with `f(old)` (null when absent), retrying a lost race; the value stored. */
export function update(bucket, key, f, shape) {
  const b = bucketOf(bucket);
  for (let i = 0; i < UPDATE_TRIES; i++) {
    const old = checked(bucket, () => b.get(key));
    const next = f(none(old) ? null : decode(old, shape, bucket, key));
    const bytes = encode(next, shape);
    if (checked(bucket, () => compareAndSwap(b, key, none(old) ? undefined : old, bytes))) return next;
  }
  throw new StoreError('other', `\`${key}\` in \`${bucket}\` changed under every one of ${UPDATE_TRIES} tries`);
}

/** The values of `keys`, in order (null for an absent key). */
export function getMany(bucket, keys, shape) {
  const got = checked(bucket, () => witGetMany(bucketOf(bucket), keys));
  return got.map((kv) => (none(kv) ? null : decode(kv[1], shape, bucket, kv[0])));
}
/** Store every [key, value] (an array of pairs, a Map or an object) in one durable write. */
export function setMany(bucket, entries, shape) {
  const items = entries instanceof Map ? [...entries] : Array.isArray(entries) ? entries : Object.entries(entries);
  const pairs = items.map(([k, v]) => [k, encode(v, shape)]);
  checked(bucket, () => witSetMany(bucketOf(bucket), pairs));
}
export const deleteMany = (bucket, keys) => checked(bucket, () => witDeleteMany(bucketOf(bucket), keys));

/** Every key of the bucket, sorted, each once; throws rather than collect more than `limit`. */
export function keys(bucket, limit = MAX_KEYS) {
  const b = bucketOf(bucket);
  const seen = new Set();
  let cursor;
  for (;;) {
    const page = checked(bucket, () => b.listKeys(cursor));
    for (const k of page.keys) seen.add(k);
    if (seen.size > limit) throw new StoreError('other', `bucket \`${bucket}\` has more than ${limit} keys; pass a larger limit`);
    if (none(page.cursor)) return [...seen].sort();
    cursor = page.cursor;
  }
}
