"""OTP's supervisor API from a particle (each call authorized by Cedar,
action ``supervise`` on the supervisor). Errors are `SupervisorError`
with the WIT case as ``kind``."""

from typing import Optional

from componentize_py_types import Err
from wit_world.imports import supervisor as _wit

from .process import PlasmoidError, pid_of, _init, _raise

ChildInfo, ChildCounts, ChildSpec, Restart = _wit.ChildInfo, _wit.ChildCounts, _wit.ChildSpec, _wit.Restart

__all__ = ["SupervisorError", "ChildInfo", "ChildCounts", "ChildSpec", "Restart", "which_children",
           "count_children", "start_child", "terminate_child", "restart_child", "delete_child", "child_spec"]


class SupervisorError(PlasmoidError):
    pass


def child_spec(id: str, component: str, init="", restart=Restart.PERMANENT,
               shutdown: Optional[float] = 5.0) -> ChildSpec:
    """A worker child; ``shutdown`` in seconds, None for a brutal kill."""
    ms = None if shutdown is None else int(shutdown * 1000)
    return ChildSpec(id=id, component=component, init=_init(init), restart=restart, shutdown_ms=ms)


def _call(fn, *args):
    try:
        return fn(*args)
    except Err as e:
        _raise(e, SupervisorError)


def which_children(sup):
    return _call(_wit.which_children, pid_of(sup))


def count_children(sup):
    return _call(_wit.count_children, pid_of(sup))


def start_child(sup, spec: ChildSpec):
    return _call(_wit.start_child, pid_of(sup), spec)


def terminate_child(sup, id: str) -> None:
    _call(_wit.terminate_child, pid_of(sup), id)


def restart_child(sup, id: str):
    return _call(_wit.restart_child, pid_of(sup), id)


def delete_child(sup, id: str) -> None:
    _call(_wit.delete_child, pid_of(sup), id)
