"""Plasmoid particles in Python.

A particle is a component of the ``particle-kv-http`` world (``plasmoid/wit``),
built with componentize-py. This package wraps the runtime's interfaces::

    import plasmoid
    from plasmoid import codec

    CounterRequest = codec.enum("CounterRequest", Get=None, Increment=None, Add=codec.u64, Version=None)

    class Counter(plasmoid.GenServer):
        call_type, reply_type = CounterRequest, codec.u64
        def init(self, args): self.value = args or 0
        def handle_call(self, req, sender):
            match req:
                case CounterRequest.Add(n): self.value += n
            return self.value

    WitWorld = plasmoid.serve(Counter)

Messages to and from Rust particles use postcard (`plasmoid.codec`); JSON
is there for particles that agree on it.
"""

import os as _os

WIT_DIR = _os.path.join(_os.path.dirname(__file__), "wit")
"""The WIT this SDK is written against; pass it to componentize-py's ``-d``."""

WORLD = "particle-kv-http"
"""The world to build against: a particle with the durable store and outgoing HTTP."""

try:
    from wit_world.imports import process as _probe  # noqa: F401
except ImportError:  # outside a component: only the codec is usable
    from . import codec  # noqa: F401
else:
    from componentize_py_types import Err  # noqa: F401  (raise it from start to fail it)
    from . import codec  # noqa: F401
    from .process import *  # noqa: F401,F403
    from .process import __all__ as _process_all
    from .server import GenServer, STOP, serve, main, HttpResponse  # noqa: F401
    from . import supervisor  # noqa: F401
    from . import pg  # noqa: F401
    try:
        from . import store  # noqa: F401
    except ImportError:  # built against `particle`, not `particle-kv`: no store
        pass
    try:
        from . import http  # noqa: F401
    except ImportError:  # built without `wasi:http` (not `particle-kv-http`)
        pass

    __all__ = list(_process_all) + ["GenServer", "STOP", "serve", "main", "HttpResponse", "codec", "supervisor", "pg", "store", "http", "Err"]
