"""The codec against bytes the Rust SDK writes (postcard 1.x), so a
Python particle and a Rust one read each other's messages."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from plasmoid import codec as c  # noqa: E402

CounterRequest = c.enum("CounterRequest", Get=None, Increment=None, Add=c.u64, Version=None)
Order = c.struct("Order", id=c.u64, gateway=c.string, from_=c.string, to=c.string, amount=c.u64)
LedgerCall = c.enum("LedgerCall", Transfer=Order, Balance=c.string, Totals=None, Balances=None)
LedgerReply = c.enum(
    "LedgerReply",
    Settled={"from_balance": c.u64, "to_balance": c.u64},
    Rejected=c.string,
    Balance=c.option(c.u64),
    Totals={"settled": c.u64, "sum": c.u64},
    Balances=c.map_(c.string, c.u64),
)


class Postcard(unittest.TestCase):
    def test_the_bytes_rust_writes(self):
        # apps/counter-proto and apps/demo/shop-proto pin these.
        self.assertEqual(CounterRequest.encode(CounterRequest.Add(300)), bytes([2, 172, 2]))
        self.assertEqual(CounterRequest.encode(CounterRequest.Get), b"\x00")
        self.assertEqual(c.u64.encode(7), b"\x07")
        self.assertEqual(LedgerCall.encode(LedgerCall.Balance("alice")), b"\x01\x05alice")
        settled = LedgerReply.Settled(from_balance=900, to_balance=1100)
        self.assertEqual(LedgerReply.encode(settled), bytes([0, 0x84, 0x07, 0xCC, 0x08]))
        self.assertEqual(LedgerReply.decode(bytes([0, 0x84, 0x07, 0xCC, 0x08])), settled)

    def test_round_trips(self):
        cases = [
            (c.i64, -1), (c.i64, -(2**63)), (c.i64, 2**63 - 1), (c.i32, -300), (c.i8, -128),
            (c.u8, 255), (c.u64, 2**64 - 1), (c.f64, 1.5), (c.boolean, True),
            (c.string, "héllo"), (c.byte_buf, b"\x00\xff"), (c.option(c.string), None),
            (c.seq(c.u16), [1, 500, 65535]), (c.tuple_(c.u8, c.string), (1, "x")),
            (c.map_(c.string, c.u64), {"b": 2, "a": 1}),
            (LedgerCall, LedgerCall.Transfer(Order(1, "g", "alice", "bob", 5))),
            (LedgerReply, LedgerReply.Balances({"alice": 1})),
        ]
        for shape, value in cases:
            with self.subTest(shape=shape, value=value):
                self.assertEqual(shape.decode(shape.encode(value)), value)

    def test_zigzag_is_rusts(self):
        self.assertEqual(c.i32.encode(-1), b"\x01")
        self.assertEqual(c.i32.encode(1), b"\x02")
        self.assertEqual(c.i32.encode(-2), b"\x03")

    def test_maps_are_written_in_key_order(self):
        self.assertEqual(c.map_(c.string, c.u8).encode({"b": 2, "a": 1}), b"\x02\x01a\x01\x01b\x02")

    def test_bad_bytes_are_refused_in_words(self):
        with self.assertRaisesRegex(c.DecodeError, "left over"):
            CounterRequest.decode(b"\x00\x00")
        with self.assertRaisesRegex(c.DecodeError, "not a variant"):
            CounterRequest.decode(b"\x09")
        with self.assertRaisesRegex(c.DecodeError, "varint"):
            c.u64.decode(b"\xff")
        with self.assertRaisesRegex(c.DecodeError, "out of range"):
            c.u8.decode(b"") if False else c.u16.decode(b"\xff\xff\x7f")
        with self.assertRaisesRegex(c.DecodeError, "limit"):
            c.byte_buf.decode(b"\xff\xff\xff\xff\x0f")
        # A cast decoder meets "stop": not a variant, so it goes to handle_info.
        with self.assertRaises(c.DecodeError):
            CounterRequest.decode(b"stop")

    def test_values_work_with_match(self):
        match CounterRequest.decode(bytes([2, 5])):
            case CounterRequest.Add(n):
                self.assertEqual(n, 5)
            case _:
                self.fail("no match")
        self.assertEqual(repr(CounterRequest.Get), "CounterRequest.Get")

    def test_wrong_values_are_refused_before_sending(self):
        with self.assertRaisesRegex(ValueError, "not a u8"):
            c.u8.encode(256)
        with self.assertRaisesRegex(ValueError, "not a CounterRequest"):
            CounterRequest.encode(LedgerCall.Totals)
        with self.assertRaises(TypeError):
            c.shape_of(5)

    def test_json(self):
        self.assertEqual(c.JSON.decode(c.JSON.encode({"a": [1, 2]})), {"a": [1, 2]})
        with self.assertRaises(c.DecodeError):
            c.JSON.decode(b"{")


if __name__ == "__main__":
    unittest.main()
