"""A Python particle for the tests and benches, one role per init args.

- ``{"role": "counter", "start": 5, "name": "pycounter"}``: the Rust
  counter's protocol (apps/counter-proto), with its state handed to the next
  version on a hot swap; the data message ``crash`` raises, ``stop`` stops.
- ``"echo"``: answers a postcard ``Vec<u8>`` with itself (what apps/probe's
  ``call`` sends).
- ``{"role": "relay", "to": "counter"}``: answers a counter request by
  calling the gen_server registered as ``to`` (a Rust one, say).
- ``{"role": "stored", "bucket": "app"}``: a counter kept in the store:
  ``Add`` through compare-and-swap (and a log entry by ``set_many``),
  ``Increment`` the atomic counter ``hits``, ``Version`` the number of keys,
  ``Get`` the count; a store error ends it with the error as the reason.
- ``{"role": "fetch", "url": "http://..."}``: ``Add(n)`` POSTs ``n`` bytes
  to ``url`` and answers ``status * 10**9`` plus the number the server's
  text answer starts with; an HTTP error ends it with the error as reason.
- ``"idle"``: waits in ``recv`` forever (``bench spawn``).
"""

import plasmoid
from plasmoid import codec, http, store

VERSION = 1

CounterRequest = codec.enum("CounterRequest", Get=None, Increment=None, Add=codec.u64, Version=None)
CounterCast = codec.enum("CounterCast", Increment=None, Add=codec.u64)


class Counter(plasmoid.GenServer):
    call_type, cast_type, reply_type = CounterRequest, CounterCast, codec.u64
    upgradable = True

    def init(self, args):
        self.value = int(args.get("start", 0))
        if args.get("name"):
            plasmoid.register(args["name"])
        plasmoid.info(f"counter v{VERSION} starts at {self.value}")

    def handle_call(self, request, sender):
        match request:
            case CounterRequest.Version:
                return VERSION
            case CounterRequest.Increment:
                self.value += 1
            case CounterRequest.Add(n):
                self.value += n
        return self.value

    def handle_cast(self, msg):
        match msg:
            case CounterCast.Increment:
                self.value += 1
            case CounterCast.Add(n):
                self.value += n

    def handle_info(self, data):
        if data == b"crash":
            print(f"about to divide {self.value} by zero")
            return self.value / 0
        if data == b"stop":
            return plasmoid.STOP


class Echo(plasmoid.GenServer):
    call_type = reply_type = codec.byte_buf

    def handle_call(self, request, sender):
        return request


class Relay(plasmoid.GenServer):
    call_type, reply_type = CounterRequest, codec.u64

    def init(self, args):
        self.to = args["to"]

    def handle_call(self, request, sender):
        return plasmoid.call(self.to, request, reply=codec.u64, timeout=5.0)


class Stored(plasmoid.GenServer):
    call_type, reply_type = CounterRequest, codec.u64

    def init(self, args):
        self.bucket = args.get("bucket", "app")

    def handle_call(self, request, sender):
        b = self.bucket
        match request:
            case CounterRequest.Add(n):
                v = store.update(b, "count", lambda old: (old or 0) + n, codec.u64)
                store.set_many(b, {f"log/{v}": codec.string.encode(f"+{n}")})
                return v
            case CounterRequest.Increment:
                return store.increment(b, "hits")
            case CounterRequest.Version:
                return len(store.keys(b))
        got = store.get(b, "count", codec.u64)
        return 0 if got is None else got


class Fetch(plasmoid.GenServer):
    call_type, reply_type = CounterRequest, codec.u64

    def init(self, args):
        self.url = args["url"]

    def handle_call(self, request, sender):
        match request:
            case CounterRequest.Add(n):
                resp = http.post(self.url, b"x" * n, headers={"content-type": "text/plain"}, timeout=5.0)
            case _:
                resp = http.get(self.url, timeout=5.0)
        return resp.status * 10**9 + int(resp.text().split()[0])


def idle(_args):
    while True:
        plasmoid.recv(None)


ROLES = {"counter": plasmoid.serve(Counter), "echo": plasmoid.serve(Echo),
         "relay": plasmoid.serve(Relay), "stored": plasmoid.serve(Stored),
         "fetch": plasmoid.serve(Fetch),
         "idle": plasmoid.main(idle)}


class WitWorld:
    def start(self, init: str) -> None:
        args = codec.JSON.decode(init.encode()) if init.strip() else "idle"
        role = args if isinstance(args, str) else args.get("role", "counter")
        if role not in ROLES:
            raise plasmoid.Err(f"unknown role {role!r}; one of {', '.join(ROLES)}")
        ROLES[role]().start(init)
