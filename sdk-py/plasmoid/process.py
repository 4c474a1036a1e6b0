"""The runtime's process interface, in Python terms.

Each function is one host call of ``plasmoid:runtime/process`` (the WIT in
``plasmoid/wit``). What changes is the shape: timeouts in seconds, errors
as exceptions (`SpawnError`, `SendError`, ...) with the runtime's words,
messages as small classes that work with ``match``, and a target given as
a pid or a registered name. Authorization, links and selective receive are
the runtime's; nothing here second-guesses them.
"""

import math
from dataclasses import dataclass
from typing import Optional, Union

from wit_world.imports import process as _wit
from componentize_py_types import Err

from . import codec as _codec

Pid = _wit.Pid

__all__ = [
    "Pid", "PlasmoidError", "SpawnError", "SendError", "LinkError", "RegistryError",
    "TimerError", "CallError", "Data", "Tagged", "Exit", "Down", "Upgrade", "Http",
    "NodeInfo", "NodeUp", "NodeDown", "monitor_nodes", "nodes",
    "register_global", "unregister_global", "lookup_global",
    "Normal", "Kill", "Killed", "Shutdown", "Exception_", "Noproc", "Noconnection",
    "self_pid", "self_name", "make_ref", "spawn", "spawn_link", "spawn_on", "exit",
    "send_exit", "send", "send_tagged", "recv", "recv_ref", "resolve", "register",
    "unregister", "lookup", "link", "unlink", "monitor", "demonitor", "trap_exit",
    "send_after", "send_interval", "cancel_timer", "call", "cast", "whereis", "pid_of",
    "trace", "debug", "info", "warn", "error", "reason_text",
]


class PlasmoidError(Exception):
    """A refusal from the runtime. ``kind`` is the WIT case
    (``"noproc"``, ``"denied"``, ...); ``detail`` its text, if any."""

    def __init__(self, kind: str, detail: Optional[str] = None):
        self.kind, self.detail = kind, detail
        super().__init__(f"{kind}: {detail}" if detail else kind)


class SpawnError(PlasmoidError):
    pass


class SendError(PlasmoidError):
    pass


class LinkError(PlasmoidError):
    pass


class RegistryError(PlasmoidError):
    pass


class TimerError(PlasmoidError):
    pass


class CallError(PlasmoidError):
    """A call that got no reply: ``timeout``, ``exit`` (the server ended;
    ``reason`` says how), ``send`` or ``decode``."""

    def __init__(self, kind: str, detail: Optional[str] = None, reason=None):
        super().__init__(kind, detail)
        self.reason = reason




def _kebab(case: str) -> str:
    """``NotASupervisor`` -> ``not-a-supervisor``: the WIT case's name."""
    out = []
    for i, ch in enumerate(case):
        if ch.isupper() and i > 0:
            out.append("-")
        out.append(ch.lower())
    return "".join(out)


def _raise(err: Err, cls):
    """Turn a WIT error variant into ``cls`` with the case's name."""
    v = err.value
    case = type(v).__name__.split("_", 1)[-1]
    raise cls(_kebab(case), getattr(v, "value", None)) from None


# Exit reasons: the WIT variant's cases, under shorter names.
Normal = _wit.ExitReason_Normal()
Kill = _wit.ExitReason_Kill()
Killed = _wit.ExitReason_Killed()
Shutdown = _wit.ExitReason_Shutdown
Exception_ = _wit.ExitReason_Exception
Noproc = _wit.ExitReason_Noproc()
Noconnection = _wit.ExitReason_Noconnection()


def reason_text(reason) -> str:
    """The runtime's one text form: ``normal``, ``shutdown(x)``, ``exception(x)``..."""
    name = type(reason).__name__.split("_", 1)[-1].lower()
    value = getattr(reason, "value", None)
    if name == "shutdown" and not value:
        return "shutdown"
    return f"{name}({value})" if value is not None else name


@dataclass
class Data:
    """A plain message."""
    payload: bytes


@dataclass
class Tagged:
    """A request (or a reply): who sent it and the reference to answer with."""
    sender: Pid
    ref: int
    payload: bytes


@dataclass
class Exit:
    """An exit signal, as a message (this particle traps exits)."""
    sender: Pid
    reason: object


@dataclass
class Down:
    """A monitor fired."""
    sender: Pid
    ref: int
    reason: object


@dataclass
class Upgrade:
    """A new version of this particle's component is installed."""


@dataclass
class Http:
    """An HTTP request routed to this particle; answer with `plasmoid.http.respond`."""
    request: object


@dataclass
class NodeInfo:
    """A node of the cluster: its id (64 hex digits) and its release name
    (empty when it has none)."""
    id: str
    name: str


@dataclass
class NodeUp:
    """A node is connected (after ``monitor_nodes(True)``): ``{nodeup, Node}``."""
    node: NodeInfo


@dataclass
class NodeDown:
    """The connection to a node is lost: ``{nodedown, Node}``."""
    node: NodeInfo


def _message(m):
    if m is None:
        return None
    if isinstance(m, _wit.Message_Data):
        return Data(m.value)
    if isinstance(m, _wit.Message_Tagged):
        return Tagged(m.value.sender, m.value.ref, m.value.payload)
    if isinstance(m, _wit.Message_Exit):
        return Exit(m.value.sender, m.value.reason)
    if isinstance(m, _wit.Message_Down):
        return Down(m.value.sender, m.value.ref, m.value.reason)
    if isinstance(m, _wit.Message_Upgrade):
        return Upgrade()
    if isinstance(m, _wit.Message_Http):
        return Http(m.value)
    if isinstance(m, _wit.Message_NodeUp):
        return NodeUp(NodeInfo(m.value.id, m.value.name))
    if isinstance(m, _wit.Message_NodeDown):
        return NodeDown(NodeInfo(m.value.id, m.value.name))
    raise TypeError(f"unknown message {m!r}")


def _ms(timeout: Optional[float]) -> Optional[int]:
    """Seconds to whole milliseconds, rounded up (a wait is never shorter)."""
    if timeout is None:
        return None
    return max(0, math.ceil(timeout * 1000))


def self_pid() -> Pid:
    return _wit.self_pid()


def self_name() -> Optional[str]:
    return _wit.self_name()


def make_ref() -> int:
    return _wit.make_ref()


def spawn(component: str, init="", name: Optional[str] = None) -> Pid:
    """Start a particle of ``component``; ``init`` (a str, or any value as
    JSON) is handed to its ``start``."""
    try:
        return _wit.spawn(component, name, _init(init))
    except Err as e:
        _raise(e, SpawnError)


def spawn_link(component: str, init="", name: Optional[str] = None) -> Pid:
    """Spawn and link in one step, so the child cannot die unobserved between."""
    try:
        return _wit.spawn_link(component, name, _init(init))
    except Err as e:
        _raise(e, SpawnError)


def spawn_on(node: str, component: str, init="") -> Pid:
    """Spawn and link on another node of the mesh; returns once it started."""
    try:
        return _wit.spawn_on(node, component, _init(init))
    except Err as e:
        _raise(e, SpawnError)


def _init(init) -> str:
    return init if isinstance(init, str) else _codec.JSON.encode(init).decode()


def exit(reason=Normal) -> None:
    """End this particle with ``reason`` (a reason, or a str for exception(str))."""
    if isinstance(reason, str):
        reason = Exception_(reason)
    _wit.exit(reason)


def send_exit(target, reason=Kill) -> None:
    """Send an exit signal (Erlang's exit/2)."""
    try:
        _wit.send_exit(pid_of(target), reason)
    except Err as e:
        _raise(e, SendError)


def send(target, msg, shape=None) -> None:
    """Queue ``msg`` in the target's mailbox: bytes as they are, or a value
    encoded with ``shape`` (or the shape its class was made with)."""
    try:
        _wit.send(pid_of(target), _codec.shape_of(msg, shape).encode(msg))
    except Err as e:
        _raise(e, SendError)


def send_tagged(target, ref: int, msg, shape=None) -> None:
    try:
        _wit.send_tagged(pid_of(target), ref, _codec.shape_of(msg, shape).encode(msg))
    except Err as e:
        _raise(e, SendError)


def recv(timeout: Optional[float] = None):
    """The oldest message, waiting at most ``timeout`` seconds (None: forever)."""
    return _message(_wit.recv(_ms(timeout)))


def recv_ref(ref: int, timeout: Optional[float] = None):
    """The oldest Tagged or Down carrying ``ref``; others stay queued."""
    return _message(_wit.recv_ref(ref, _ms(timeout)))


def resolve(text: str) -> Optional[Pid]:
    return _wit.resolve(text)


def register(name: str) -> None:
    try:
        _wit.register(name)
    except Err as e:
        _raise(e, RegistryError)


def unregister(name: str) -> None:
    try:
        _wit.unregister(name)
    except Err as e:
        _raise(e, RegistryError)


def lookup(name: str) -> Pid:
    """``name`` here, or ``name@node`` on another node of the mesh."""
    try:
        return _wit.lookup(name)
    except Err as e:
        _raise(e, RegistryError)


def register_global(name: str) -> None:
    """Erlang's ``global:register_name``: hold ``name`` in the whole cluster;
    raises ``RegistryError("taken")`` when another particle holds it."""
    try:
        _wit.register_global(name)
    except Err as e:
        _raise(e, RegistryError)


def unregister_global(name: str) -> None:
    """Give up a cluster-wide name this particle holds."""
    try:
        _wit.unregister_global(name)
    except Err as e:
        _raise(e, RegistryError)


def lookup_global(name: str) -> Pid:
    """Who holds ``name`` cluster-wide."""
    try:
        return _wit.lookup_global(name)
    except Err as e:
        _raise(e, RegistryError)


def whereis(name: str) -> Optional[Pid]:
    """`lookup`, or None when nothing is registered (Erlang's whereis)."""
    try:
        return lookup(name)
    except RegistryError as e:
        if e.kind == "not-found":
            return None
        raise


def pid_of(target) -> Pid:
    """A pid as given, its printable form, or a registered name."""
    if isinstance(target, Pid):
        return target
    if isinstance(target, str):
        pid = _wit.resolve(target) if "." in target and "@" not in target else None
        return pid if pid is not None else lookup(target)
    raise TypeError(f"not a pid or a name: {target!r}")


def link(target) -> None:
    try:
        _wit.link(pid_of(target))
    except Err as e:
        _raise(e, LinkError)


def unlink(target) -> None:
    _wit.unlink(pid_of(target))


def monitor(target) -> int:
    """Watch ``target``; one `Down` with the returned ref when it ends."""
    try:
        return _wit.monitor(pid_of(target))
    except Err as e:
        _raise(e, LinkError)


def demonitor(ref: int) -> bool:
    return _wit.demonitor(ref)


def trap_exit(enabled: bool) -> bool:
    """Receive exit signals as `Exit` messages instead of dying; returns the old value."""
    return _wit.trap_exit(enabled)


def monitor_nodes(enabled: bool) -> bool:
    """Erlang's ``net_kernel:monitor_nodes``: with True, a ``NodeUp`` or
    ``NodeDown`` arrives each time a node connects or is lost. Returns
    whether it was on before; raises ``PlasmoidError("denied", …)`` when
    Cedar denies ``monitor_nodes``."""
    try:
        return _wit.monitor_nodes(enabled)
    except Err as e:
        raise PlasmoidError("denied", e.value) from None


def nodes() -> list:
    """The other nodes connected now, as ``NodeInfo`` (Erlang's ``nodes()``)."""
    try:
        return [NodeInfo(n.id, n.name) for n in _wit.nodes()]
    except Err as e:
        raise PlasmoidError("denied", e.value) from None


def send_after(target, seconds: float, msg, shape=None) -> int:
    """``msg`` reaches ``target`` as data after ``seconds``; returns the timer's ref."""
    try:
        return _wit.send_after(pid_of(target), _ms(seconds), _codec.shape_of(msg, shape).encode(msg))
    except Err as e:
        _raise(e, TimerError)


def send_interval(target, seconds: float, msg, shape=None) -> int:
    try:
        return _wit.send_interval(pid_of(target), _ms(seconds), _codec.shape_of(msg, shape).encode(msg))
    except Err as e:
        _raise(e, TimerError)


def cancel_timer(ref: int) -> Optional[float]:
    """Seconds that were left, or None if it fired already or is unknown."""
    left = _wit.cancel_timer(ref)
    return None if left is None else left / 1000


def call(target, request, *, reply=None, request_shape=None, timeout: Optional[float] = 5.0):
    """A gen_server call: the request goes tagged with a monitor's ref, the
    answer is the tagged reply with that ref (decoded with ``reply``, or
    bytes). Raises `CallError` on a timeout or if the server ends first;
    either way nothing is left behind (no monitor, no late reply)."""
    server = pid_of(target)
    payload = _codec.shape_of(request, request_shape).encode(request)
    ref = monitor(server)
    try:
        _wit.send_tagged(server, ref, payload)
    except Err as e:
        demonitor(ref)
        try:
            _raise(e, SendError)
        except SendError as se:
            if se.kind == "noproc":
                raise CallError("exit", "noproc", Noproc) from None
            raise CallError("send", str(se)) from None
    m = _message(_wit.recv_ref(ref, _ms(timeout)))
    if isinstance(m, Tagged):
        demonitor(ref)
        try:
            return (reply or _codec.RAW).decode(m.payload)
        except _codec.DecodeError as e:
            raise CallError("decode", str(e)) from None
    if isinstance(m, Down):
        raise CallError("exit", reason_text(m.reason), m.reason)
    demonitor(ref)
    if m is None:
        raise CallError("timeout", f"no reply within {timeout} s")
    raise CallError("decode", f"unexpected {m!r}")


def cast(target, msg, shape=None) -> None:
    """A gen_server cast: a data message, no answer."""
    send(target, msg, shape)


def _log(level, parts):
    _wit.log(level, " ".join(str(p) for p in parts))


def trace(*parts):
    _log(_wit.LogLevel.TRACE, parts)


def debug(*parts):
    _log(_wit.LogLevel.DEBUG, parts)


def info(*parts):
    _log(_wit.LogLevel.INFO, parts)


def warn(*parts):
    _log(_wit.LogLevel.WARN, parts)


def error(*parts):
    _log(_wit.LogLevel.ERROR, parts)
