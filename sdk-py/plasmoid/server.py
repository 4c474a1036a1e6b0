"""gen_server in Python: a class with handle_call / handle_cast / handle_info,
and the loop that runs it, wire-compatible with the Rust SDK's.

The protocol is the Rust SDK's (sdk/src/server.rs): a call is a tagged
message whose ref the reply carries back (`plasmoid.call` sends it); a cast
is a data message that decodes as ``cast_type`` exactly; any other data goes
to ``handle_info``. Exit signals (when trapping) and DOWNs go to
``handle_exit``, HTTP requests to ``handle_http``. With ``upgradable = True``
the state is handed to the next version on a hot swap: ``handoff()`` gives
the bytes (by default the instance's attributes as JSON) and the new
version's ``code_change(old)`` takes them. It does not decide restarts
(supervisors do) nor encode anything itself (codec.py does).
"""

import sys
import traceback

from componentize_py_types import Err
from wit_world.imports import http as _http
from wit_world.imports import process as _wit

from . import codec as _codec
from . import process as _p

__all__ = ["GenServer", "STOP", "serve", "main", "HttpResponse"]

STOP = object()
"""Return from handle_cast / handle_info / handle_exit to end normally."""

HttpResponse = _http.HttpResponse

# Most characters of an exception's text in an exit reason.
_REASON_MAX = 1_500


class GenServer:
    """Subclass it; set the shapes of what you receive and answer.

    ``call_type``/``cast_type``: shapes (codec.enum, codec.JSON, ...) of the
    requests and casts; ``reply_type``: the shape of replies, unless the
    value's own class says (values made by codec.enum/struct do). ``init``
    gets the init args, decoded from JSON (None when empty).
    """

    call_type = None
    cast_type = None
    reply_type = None
    upgradable = False

    def init(self, args) -> None:
        pass

    def handle_call(self, request, sender):
        raise NotImplementedError(f"{type(self).__name__} does not take calls")

    def handle_cast(self, msg):
        return None

    def handle_info(self, data: bytes):
        _p.debug(f"{type(self).__name__}: unhandled message of {len(data)} bytes")
        return None

    def handle_exit(self, msg):
        return None

    def handle_node(self, msg):
        """``NodeUp`` / ``NodeDown``, after ``monitor_nodes(True)``."""
        return None

    def handle_http(self, request):
        return HttpResponse(status=501, headers=[], body=b"not implemented\n")

    def handoff(self) -> bytes:
        """The state for the next version (default: attributes as JSON)."""
        return _codec.JSON.encode(vars(self))

    def code_change(self, old: bytes) -> None:
        """Take the previous version's state (default: attributes from JSON)."""
        vars(self).update(_codec.JSON.decode(old))


def _decode_init(init: str):
    return None if not init.strip() else _codec.JSON.decode(init.encode())


def _reason(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc)).strip()
    return text if len(text) <= _REASON_MAX else "…" + text[-_REASON_MAX:]


def _loop(server: GenServer) -> None:
    while True:
        m = _p.recv(None)
        if isinstance(m, _p.Tagged):
            if server.call_type is not None:
                try:
                    req = server.call_type.decode(m.payload)
                except _codec.DecodeError as e:
                    _p.warn(f"dropping a call that is not a {server.call_type.name}: {e}")
                    continue
            else:
                req = m.payload
            answer = server.handle_call(req, m.sender)
            # An answer that cannot be encoded is this server's bug: it raises.
            body = _codec.shape_of(answer, server.reply_type).encode(answer)
            try:
                _wit.send_tagged(m.sender, m.ref, body)
            except Err:
                _p.debug("the caller is gone; its reply is dropped")
            continue
        if isinstance(m, _p.Data):
            cast, is_cast = None, False
            if server.cast_type is not None:
                try:
                    cast, is_cast = server.cast_type.decode(m.payload), True
                except _codec.DecodeError:
                    pass
            out = server.handle_cast(cast) if is_cast else server.handle_info(m.payload)
            if out is STOP:
                return
            continue
        if isinstance(m, (_p.Exit, _p.Down)):
            if server.handle_exit(m) is STOP:
                return
        if isinstance(m, (_p.NodeUp, _p.NodeDown)):
            if server.handle_node(m) is STOP:
                return
            continue
        if isinstance(m, _p.Http):
            resp = server.handle_http(m.request)
            try:
                _http.respond(m.request.ref, resp)
            except Err as e:
                _p.warn(f"cannot answer the HTTP request: {e.value}")
            continue
        if isinstance(m, _p.Upgrade):
            if server.upgradable:
                _wit.handoff(server.handoff())
                return


def _run(body, init: str) -> None:
    """Run ``body``; an exception ends the particle with its traceback as
    the exit reason (and on stderr, so in the log under this pid)."""
    try:
        body(init)
    except Err:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure is the exit reason
        traceback.print_exc(file=sys.stderr)
        raise Err(_reason(exc)) from None


def serve(cls):
    """The component's entry point for a GenServer class::

        WitWorld = plasmoid.serve(Counter)
    """

    def body(init: str) -> None:
        server = cls()
        old = _wit.take_handoff()
        if old is not None:
            server.code_change(old)
        else:
            server.init(_decode_init(init))
        if cls.upgradable:
            _wit.set_upgradable(True)
        _loop(server)

    class WitWorld:
        def start(self, init: str) -> None:
            _run(body, init)

    return WitWorld


def main(fn):
    """The entry point for a plain function of the init args::

        @plasmoid.main
        def start(args): ...
        WitWorld = start
    """

    class WitWorld:
        def start(self, init: str) -> None:
            _run(lambda i: fn(_decode_init(i)), init)

    return WitWorld
