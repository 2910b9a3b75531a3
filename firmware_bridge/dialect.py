"""The Suncatcher MAVLink dialect, generated from its XML at first use.

``firmware_bridge/dialect/suncatcher.xml`` is the one source of truth. The
Python module is generated from it with pymavlink's mavgen (MAVLink 2) into a
cache and imported from there; it is regenerated whenever the fingerprint
changes (the XML, every XML it includes, or the pymavlink version). Generated
code is never edited by hand.

Cache directory, first usable of: ``$SUNCATCHER_DIALECT_CACHE``;
``firmware_bridge/_generated/`` (if writable); ``$XDG_CACHE_HOME`` (or
``~/.cache``) ``/suncatcher-twin/dialect``.

Includes (``common.xml`` ...) are looked up next to the including file, then in
pymavlink's shipped ``dialects/v20`` directory.

    load_dialect() -> module          the generated module, imported once per process
    generate_c(out_dir) -> Path       C headers for board firmware
    register_with_mavutil() -> str    lets pymavlink's mavutil / mavlogdump use the dialect
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pymavlink
from lxml import etree

__all__ = ["DIALECT_NAME", "XML_PATH", "DialectError", "fingerprint", "ensure_python", "load_dialect",
           "generate_c", "register_with_mavutil"]

DIALECT_NAME = "suncatcher"
XML_PATH = Path(__file__).with_name("dialect") / f"{DIALECT_NAME}.xml"
PYMAVLINK_XML_DIR = Path(pymavlink.__file__).parent / "dialects" / "v20"
_WIRE_PROTOCOL = "2.0"
_MODULE_NAME = f"firmware_bridge._generated.{DIALECT_NAME}"


class DialectError(RuntimeError):
    """The dialect could not be generated or imported; ``detail`` holds mavgen's output."""

    def __init__(self, message: str, xml_path: Path, detail: str = ""):
        super().__init__(f"{message} ({xml_path})" + (f"\n{detail}" if detail else ""))
        self.xml_path = xml_path
        self.detail = detail


def _includes(xml_path: Path) -> list[Path]:
    """The XML and every file it includes, transitively, each once, in discovery order."""
    seen: dict[str, Path] = {}
    todo = [xml_path]
    while todo:
        path = todo.pop(0)
        if path.name in seen:
            continue
        seen[path.name] = path
        try:
            names = [e.text.strip() for e in etree.parse(str(path)).iter("include")]
        except (OSError, etree.XMLSyntaxError) as exc:
            raise DialectError("cannot read dialect XML", path, str(exc)) from exc
        for name in names:
            for folder in (path.parent, PYMAVLINK_XML_DIR):
                if (folder / name).is_file():
                    todo.append(folder / name)
                    break
            else:
                raise DialectError(f"included file {name!r} not found", path)
    return list(seen.values())


def fingerprint(xml_path: Path = XML_PATH) -> str:
    """SHA-256 over the XML, its includes, the pymavlink version and the wire protocol."""
    h = hashlib.sha256(f"pymavlink {pymavlink.__version__} wire {_WIRE_PROTOCOL}\n".encode())
    for path in _includes(xml_path):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _run_mavgen(xml_path: Path, output: Path, language: str) -> None:
    from pymavlink.generator import mavgen

    with tempfile.TemporaryDirectory(prefix="sc-mavgen-") as stage:
        # mavgen resolves includes relative to the XML, so all of them are staged side by side.
        for path in _includes(xml_path):
            shutil.copyfile(path, Path(stage) / path.name)
        log = io.StringIO()
        opts = mavgen.Opts(str(output), wire_protocol=_WIRE_PROTOCOL, language=language, validate=True)
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                ok = mavgen.mavgen(opts, [str(Path(stage) / xml_path.name)])
        except SystemExit as exc:  # mavgen calls exit() on invalid XML
            raise DialectError("mavgen rejected the dialect", xml_path, log.getvalue()) from exc
        if not ok:
            raise DialectError("mavgen rejected the dialect", xml_path, log.getvalue())


def _default_cache_dir() -> Path:
    if env := os.environ.get("SUNCATCHER_DIALECT_CACHE"):
        return Path(env)
    inside = Path(__file__).with_name("_generated")
    with contextlib.suppress(OSError):
        inside.mkdir(exist_ok=True)
        if os.access(inside, os.W_OK):
            return inside
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "suncatcher-twin" / "dialect"


def ensure_python(xml_path: Path = XML_PATH, cache_dir: Path | None = None) -> Path:
    """Path of the generated Python module for ``xml_path``, generating it if the cache lacks it.

    The file name carries the fingerprint, so a changed XML gets a new file;
    stale files of the same dialect are removed. Writes are atomic (temporary
    file, then rename), so concurrent processes never see a half-written module.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    stem = xml_path.stem
    target = cache_dir / f"{stem}_{fingerprint(xml_path)[:20]}.py"
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}-", suffix=".py", dir=cache_dir)
    os.close(fd)
    try:
        _run_mavgen(xml_path, Path(tmp), "Python")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache may be shared
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    for old in cache_dir.glob(f"{stem}_*.py"):
        if old != target:
            with contextlib.suppress(OSError):
                old.unlink()
    return target


def _import(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # registered before exec so pickling and dataclasses can find it
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise DialectError("generated module failed to import", path, repr(exc)) from exc
    return module


@functools.cache
def load_dialect() -> ModuleType:
    """The generated dialect module (pymavlink's ``MAVLink`` class, message classes, enums)."""
    return _import(ensure_python(), _MODULE_NAME)


def generate_c(out_dir: str | os.PathLike, xml_path: Path = XML_PATH) -> Path:
    """Generate the MAVLink 2 C headers into ``out_dir``; returns the dialect's header directory.

    Board firmware adds ``out_dir`` to its include path and includes
    ``<suncatcher/mavlink.h>``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _run_mavgen(xml_path, out, "C")
    return out / xml_path.stem


def register_with_mavutil() -> str:
    """Make the dialect importable where pymavlink's mavutil looks for it; returns its name.

    mavutil imports ``pymavlink.dialects.v10.<name>`` or ``.v20.<name>``
    depending on the ``MAVLINK20`` environment variable; the generated module
    parses both wire versions, so it is registered under both. Afterwards
    ``mavutil.mavlink_connection(path, dialect=register_with_mavutil())`` reads
    our tlogs. Only this process's module table is touched, never pymavlink's files.
    """
    module = load_dialect()
    import pymavlink.dialects.v10 as v10
    import pymavlink.dialects.v20 as v20

    for package in (v10, v20):
        sys.modules[f"{package.__name__}.{DIALECT_NAME}"] = module
        setattr(package, DIALECT_NAME, module)
    return DIALECT_NAME
