"""Audit: an append-only log of what the ledger settled, in Python.

It starts first (nothing depends on it being absent) and registers as
`audit`. The ledger (Rust) casts it one `AuditCast::Record` per settled
order, and anyone may call `AuditCall::Count`; both are shop-proto's types
(apps/demo/shop-proto), encoded with postcard as the Rust side does.
"""

import plasmoid
from plasmoid import codec

AUDIT = "audit"
# shop-proto: enum AuditCast { Record { order: u64, line: String } }
AuditCast = codec.enum("AuditCast", Record={"order": codec.u64, "line": codec.string})
# shop-proto: enum AuditCall { Count } -> u64
AuditCall = codec.enum("AuditCall", Count=None)


class Audit(plasmoid.GenServer):
    call_type, cast_type, reply_type = AuditCall, AuditCast, codec.u64

    def init(self, args):
        # Failing here makes the supervisor retry, which is right: the name
        # frees up when the previous instance's exit is processed.
        plasmoid.register(AUDIT)
        plasmoid.info("audit log open")
        self.entries = 0
        self.last = ""

    def handle_call(self, request, sender):
        match request:
            case AuditCall.Count:
                return self.entries

    def handle_cast(self, msg):
        match msg:
            case AuditCast.Record(order, line):
                self.entries += 1
                self.last = line
                if self.entries % 25 == 0:
                    plasmoid.info(f"audit: {self.entries} entries; latest #{order}: {self.last}")


WitWorld = plasmoid.serve(Audit)
