"""Engines: a small class or a pair of module functions, and the process entry that serves one.

An engine has ``handle(request, stream)`` (required; see :data:`RequestHandler`), and may have
``setup(conn)`` (load the model; what it returns is the ``ready`` info) and ``shutdown(reason)``.
``python -m omnistage_worker ./my_engine.py[:Class]`` loads one (an instance of ``Class``, or the
module's functions) and serves it; that is the command the ``python`` engine of omnistage runs.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any, NoReturn, Optional

from .connection import Connection, connect


class EntryError(Exception):
    """The engine entry (``file.py[:Class]``) cannot be loaded; the message says why."""


def split_entry(entry: str) -> "tuple[str, Optional[str]]":
    """``"./x.py:Engine"`` → ``("./x.py", "Engine")``; ``"./x.py"`` → ``("./x.py", None)``."""
    path, sep, name = entry.rpartition(":")
    if not sep or "/" in name or not name.isidentifier():
        return entry, None
    return path, name


def load_entry(entry: str) -> Any:
    """Imports the engine file and returns the engine: an instance of its class, or the module.

    The file's directory goes first on ``sys.path`` so the engine can import its neighbours.
    """
    path, class_name = split_entry(entry)
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise EntryError(f"engine file {path} does not exist")
    module_name = "omnistage_engine_" + os.path.splitext(os.path.basename(path))[0].replace("-", "_")
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise EntryError(f"engine file {path} cannot be imported (not a .py file?)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    sys.path.insert(0, os.path.dirname(path))
    spec.loader.exec_module(module)
    if class_name is None:
        engine: Any = module
    else:
        cls = getattr(module, class_name, None)
        if not isinstance(cls, type):
            raise EntryError(f"engine file {path} has no class {class_name}")
        engine = cls()
    if not callable(getattr(engine, "handle", None)):
        what = f"class {class_name}" if class_name else f"module {path}"
        raise EntryError(f"{what} has no handle(request, stream) function")
    return engine


def serve(engine: Any, conn: Connection) -> None:
    """Wires an engine to an attached connection: ``setup``, handlers, then ``ready``."""
    setup = getattr(engine, "setup", None)
    info = setup(conn) if callable(setup) else None
    shutdown = getattr(engine, "shutdown", None)
    if callable(shutdown):
        conn.on_shutdown(shutdown)
    conn.on_request(engine.handle)
    conn.ready(info)


def run_worker(engine: Any, **options: Any) -> NoReturn:
    """Connects (``options`` go to :func:`connect`), serves ``engine`` until the orchestrator is done
    with this replica, and exits 0. When connecting or ``setup`` fails, the error goes to stderr
    and the process exits 1 (the orchestrator reports it with these last lines)."""
    try:
        conn = connect(**options)
        serve(engine, conn)
    except Exception as err:  # noqa: BLE001 - any failure before ready ends the replica with a message
        code = getattr(err, "code", None)
        hint = getattr(err, "hint", None)
        sys.stderr.write(f"omnistage worker failed: {code + ': ' if isinstance(code, str) else ''}{err}\n")
        if isinstance(hint, str):
            sys.stderr.write(f"  hint: {hint}\n")
        sys.stderr.flush()
        os._exit(1)
    conn.wait_closed()
    sys.stdout.flush()
    os._exit(0)
