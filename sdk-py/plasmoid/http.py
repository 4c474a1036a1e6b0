"""Outgoing HTTP: a request from a particle through ``wasi:http``'s
outgoing handler, blocking until the answer is in, as Spin's
``spin_sdk.http.send`` does.

Each destination is authorized by Cedar: action ``connect`` on
``Host::"<host>:<port>"``, principal ``Particle::"<component>"``; the
default policies permit none. A refusal, a failed connection or a timeout
raises `HttpError` with the WASI error code as ``kind``
(``"http-request-denied"``, ``"connection-refused"``,
``"connection-timeout"``...). Bodies are bytes; the answer's body is read
whole, at most ``max_body`` bytes (16 MiB unless given).

    resp = plasmoid.http.request("POST", "http://127.0.0.1:9000/hook",
                                 headers={"content-type": "application/json"},
                                 body=b'{"order": 7}', timeout=5.0)
    resp.status, resp.header("content-type"), resp.body
"""

import json as _json
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

from componentize_py_types import Err, Ok

try:
    from wit_world.imports import outgoing_handler as _handler
    from wit_world.imports import streams as _streams
    from wit_world.imports import types as _types
except ImportError as e:
    raise ImportError("plasmoid.http needs the `particle-kv-http` world: build with `-w particle-kv-http`") from e

from .process import PlasmoidError

__all__ = ["HttpError", "Response", "request", "get", "post", "MAX_BODY"]

MAX_BODY = 16 << 20
"""The largest answer body `request` reads unless told otherwise."""

# wasi:io's streams take at most 4 KiB per blocking write.
_WRITE_CHUNK = 4096
_READ_CHUNK = 64 << 10

_METHODS = {
    "GET": _types.Method_Get, "HEAD": _types.Method_Head, "POST": _types.Method_Post,
    "PUT": _types.Method_Put, "DELETE": _types.Method_Delete, "CONNECT": _types.Method_Connect,
    "OPTIONS": _types.Method_Options, "TRACE": _types.Method_Trace, "PATCH": _types.Method_Patch,
}


class HttpError(PlasmoidError):
    """A request that got no answer: ``kind`` is the WASI error code in
    kebab case, or ``"invalid"`` (a bad URL, method or header),
    ``"body-too-large"`` (the answer passed ``max_body``)."""


@dataclass
class Response:
    status: int
    headers: List[Tuple[str, bytes]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> Optional[str]:
        """The first value of header ``name`` (any case), as text."""
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v.decode("latin-1")
        return None

    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self):
        return _json.loads(self.body)


def _kebab(camel: str) -> str:
    out = []
    for i, c in enumerate(camel):
        if c.isupper() and i > 0 and not camel[i - 1].isupper():
            out.append("-")
        out.append(c.lower())
    return "".join(out)


def _error(code) -> HttpError:
    name = type(code).__name__.removeprefix("ErrorCode_")
    detail = getattr(code, "value", None)
    return HttpError(_kebab(name), None if detail is None else str(detail))


def _split(url: str) -> Tuple[object, str, str]:
    scheme, sep, rest = url.partition("://")
    schemes = {"http": _types.Scheme_Http, "https": _types.Scheme_Https}
    if not sep or scheme.lower() not in schemes:
        raise HttpError("invalid", f"{url!r} is not an http:// or https:// URL")
    rest = rest.split("#", 1)[0]
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, path = rest[:cut], rest[cut:]
    if not authority:
        raise HttpError("invalid", f"{url!r} names no host")
    if not path.startswith("/"):
        path = "/" + path
    return schemes[scheme.lower()](), authority, path


def request(method: str, url: str, *, headers: Union[Dict[str, str], List[Tuple[str, bytes]], None] = None,
            body: Optional[bytes] = None, timeout: Optional[float] = 30.0, max_body: int = MAX_BODY) -> Response:
    """Send one request and return the whole answer. ``timeout`` (seconds)
    bounds the connection, the first byte and each gap between bytes
    (None: the runtime's own bounds, 10 s to connect and 30 s between
    bytes)."""
    scheme, authority, path = _split(url)
    kind = _METHODS.get(method.upper())
    verb = kind() if kind else _types.Method_Other(method)
    items = headers.items() if isinstance(headers, dict) else (headers or [])
    pairs = [(k, v if isinstance(v, bytes) else str(v).encode("latin-1")) for k, v in items]
    try:
        fields = _types.Fields.from_list(pairs)
    except Err as e:
        raise HttpError("invalid", f"header: {type(e.value).__name__.removeprefix('HeaderError_')}") from None
    req = _types.OutgoingRequest(fields)
    try:
        req.set_method(verb)
        req.set_scheme(scheme)
        req.set_authority(authority)
        req.set_path_with_query(path)
    except Err:
        raise HttpError("invalid", f"{method} {url}") from None
    options = None
    if timeout is not None:
        ns = max(1, int(timeout * 1e9))
        options = _types.RequestOptions()
        for setter in (options.set_connect_timeout, options.set_first_byte_timeout,
                       options.set_between_bytes_timeout):
            try:
                setter(ns)
            except Err:
                pass  # a host that bounds it itself
    out_body = req.body()
    try:
        future = _handler.handle(req, options)
    except Err as e:
        raise _error(e.value) from None
    # The body goes after `handle`: the host reads it while it sends.
    stream = out_body.write()
    try:
        data = body or b""
        for i in range(0, len(data), _WRITE_CHUNK):
            stream.blocking_write_and_flush(data[i:i + _WRITE_CHUNK])
    except Err:
        pass  # the host stopped reading: the answer (or its error) says why
    finally:
        stream.__exit__(None, None, None)
    try:
        _types.OutgoingBody.finish(out_body, None)
    except Err:
        pass
    while True:
        got = future.get()
        if got is not None:
            break
        with future.subscribe() as ready:
            ready.block()
    future.__exit__(None, None, None)
    if isinstance(got, Err) or not isinstance(got.value, Ok):
        code = got.value.value if isinstance(got, Ok) else None
        if code is None:
            raise HttpError("internal-error", "the response was already taken")
        raise _error(code)
    resp = got.value.value
    status, answer_headers = resp.status(), resp.headers().entries()
    in_body = resp.consume()
    stream = in_body.stream()
    chunks, size = [], 0
    try:
        while True:
            try:
                chunk = stream.blocking_read(_READ_CHUNK)
            except Err as e:
                if isinstance(e.value, _streams.StreamError_Closed):
                    break
                raise HttpError("http-protocol-error", "the answer's body broke off") from None
            size += len(chunk)
            if size > max_body:
                raise HttpError("body-too-large", f"the answer's body passed {max_body} bytes")
            chunks.append(chunk)
    finally:
        stream.__exit__(None, None, None)
        _types.IncomingBody.finish(in_body)
        resp.__exit__(None, None, None)
    return Response(status, answer_headers, b"".join(chunks))


def get(url: str, **kw) -> Response:
    return request("GET", url, **kw)


def post(url: str, body: bytes, **kw) -> Response:
    return request("POST", url, body=body, **kw)
