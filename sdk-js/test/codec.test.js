// The codec against the bytes the Rust SDK writes: `node --test sdk-js/test`.
import test from 'node:test';
import assert from 'node:assert/strict';
import * as c from '../codec.js';

const CounterRequest = c.enumOf('CounterRequest', { Get: null, Increment: null, Add: c.u64, Version: null });
const LedgerReply = c.enumOf('LedgerReply', {
  Settled: { from_balance: c.u64, to_balance: c.u64 }, Rejected: c.string, Balance: c.option(c.u64),
  Totals: { settled: c.u64, sum: c.u64 }, Balances: c.map(c.string, c.u64),
});

test('the bytes Rust writes', () => {
  assert.deepEqual([...CounterRequest.encode(CounterRequest.Add(300))], [2, 172, 2]);
  assert.deepEqual([...CounterRequest.encode(CounterRequest.Get)], [0]);
  assert.deepEqual([...LedgerReply.encode(LedgerReply.Settled({ from_balance: 900, to_balance: 1100 }))], [0, 0x84, 0x07, 0xcc, 0x08]);
  assert.deepEqual(LedgerReply.decode(Uint8Array.from([0, 0x84, 0x07, 0xcc, 0x08])), { tag: 'Settled', from_balance: 900, to_balance: 1100 });
});

test('u64 past 2^53 is a BigInt, below a Number', () => {
  assert.equal(c.u64.decode(c.u64.encode(2n ** 64n - 1n)), 2n ** 64n - 1n);
  assert.equal(c.u64.decode(c.u64.encode(7)), 7);
  assert.equal(c.i64.decode(c.i64.encode(-(2n ** 63n))), -(2n ** 63n));
  assert.deepEqual([...c.i32.encode(-1)], [1]);
  assert.deepEqual([...c.i32.encode(-2)], [3]);
  assert.equal(c.i32.decode(Uint8Array.from([3])), -2);
});

test('round trips', () => {
  for (const [s, v] of [[c.string, 'héllo'], [c.option(c.u8), null], [c.seq(c.u16), [1, 500]], [c.f64, 1.5],
    [c.tuple(c.u8, c.string), [1, 'x']], [c.bool, true], [c.i8, -128]]) {
    assert.deepEqual(s.decode(s.encode(v)), v);
  }
  assert.deepEqual(c.map(c.string, c.u8).decode(c.map(c.string, c.u8).encode({ b: 2, a: 1 })), new Map([['a', 1], ['b', 2]]));
});

test('bad bytes are refused in words', () => {
  assert.throws(() => CounterRequest.decode(Uint8Array.from([0, 0])), /left over/);
  assert.throws(() => CounterRequest.decode(Uint8Array.from([9])), /not a variant/);
  assert.throws(() => c.u64.decode(Uint8Array.from([0xff])), /varint/);
  assert.throws(() => c.bytes.decode(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0x0f])), /limit/);
  assert.throws(() => c.u8.encode(256), RangeError);
  assert.throws(() => c.JSON.decode(Uint8Array.from([0x7b])), c.DecodeError);
});

test('the UTF-8 of engines without TextEncoder matches the standard one', async () => {
  const saved = [globalThis.TextEncoder, globalThis.TextDecoder];
  globalThis.TextEncoder = undefined;
  globalThis.TextDecoder = undefined;
  const bare = await import('../codec.js?bare');
  [globalThis.TextEncoder, globalThis.TextDecoder] = saved;
  for (const s of ['', 'ascii', 'héllo', '€', '😀 mixed ✓']) {
    assert.deepEqual([...bare.text.encode(s)], [...new TextEncoder().encode(s)]);
    assert.equal(bare.text.decode(new TextEncoder().encode(s)), s);
  }
  assert.throws(() => bare.text.decode(Uint8Array.from([0xc0, 0x80])), bare.DecodeError);
  assert.throws(() => bare.text.decode(Uint8Array.from([0xed, 0xa0, 0x80])), bare.DecodeError);
});

test('a decoded variant encodes again without naming its shape', () => {
  const v = CounterRequest.decode(Uint8Array.from([2, 5]));
  assert.deepEqual([...c.shapeOf(v).encode(v)], [2, 5]);
  assert.equal(JSON.stringify(v), '{"tag":"Add","value":5}');
});
