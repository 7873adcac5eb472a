"""Traced audit programs kept on disk (``jax.export``), so a warm run skips tracing.

JAX's persistent compilation cache skips XLA compilation, but every run still
traces and lowers each program once per bucket shape before it can look the
compiled code up: for the default SST audit, 20 programs and about 3 s of
Python. ``ProgramCache`` serialises each lowered program on its first use and
deserialises it in later runs, which costs milliseconds.

A program is found again only under the same key: the program's name, its static
arguments, the tree structure, shapes, dtypes and shardings of its other
arguments, the jax version and configuration, the devices, and a digest of
attn_audit's own source files. Any change to the code therefore exports afresh;
a stale program is never run. Parameter values are arguments, not constants: the
same file serves every run of the same model configuration.
"""

import functools
import hashlib
import logging
import os
import pathlib
import pickle
import tempfile
import threading
from collections.abc import Mapping

import jax
from jax import export
from jax.experimental import serialize_executable

_PACKAGE = pathlib.Path(__file__).resolve().parent.parent


@functools.cache
def source_digest() -> str:
    """sha256 over the path and bytes of every ``.py`` file of the attn_audit package."""
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*.py")):
        digest.update(str(path.relative_to(_PACKAGE)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _describe(value) -> str:
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"{value.dtype}{list(value.shape)}@{getattr(value, 'sharding', None)}"
    return repr(value)


def program_key(name: str, static: Mapping, dynamic: Mapping) -> str:
    """The file name of a program: a sha256 of everything its compiled code depends on.

    Args:
      name: the program's name.
      static: its static arguments by name; dynamic: the others by name.
    """
    static = [f"{argument}={value!r}" for argument, value in sorted(static.items())]
    leaves, structure = jax.tree.flatten(dict(dynamic))
    parts = [
        name,
        *static,
        str(structure),
        *map(_describe, leaves),
        jax.__version__,
        repr(sorted((name, repr(value)) for name, value in jax.config.values.items())),
        repr([(d.platform, d.device_kind) for d in jax.devices()]),
        source_digest(),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class ProgramCache:
    """Runs jitted programs through exported copies kept in ``folder``.

    ``cache(name, function, static, dynamic)`` equals ``function(**static, **dynamic)``
    (tested), where ``function`` is jitted with the keys of ``static`` as its static
    arguments. The first call of a key exports the program (one trace, as ``jit`` would do)
    and writes it; later processes read it back. An unreadable file is exported again; if
    exporting fails, the program runs through ``jit`` as usual, with a warning.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = pathlib.Path(folder)
        self._callables: dict[str, object] = {}

    def __call__(self, name: str, function, static: Mapping, dynamic: Mapping):
        exported = self._callable(name, function, static, dynamic)
        return function(**static, **dynamic) if exported is None else exported(**dynamic)

    def lower(self, name: str, function, static: Mapping, dynamic: Mapping):
        """Loads or exports the program; returns it lowered (``jax.stages.Lowered``), to be
        compiled and then called with the dynamic arguments only (by name)."""
        exported = self._callable(name, function, static, dynamic)
        if exported is None:
            return function.lower(**static, **dynamic)
        return exported.lower(**dynamic)

    def compiled(self, name: str, function, static: Mapping, dynamic: Mapping, options=None):
        """The program lowered (``lower``) and compiled with XLA ``options``
        (``jax.stages.Compiled``).

        JAX's persistent cache keeps compiled code for the next run, but only process 0 of a
        job of several processes writes to it (and on CPU its key names the devices, so the
        other processes never find process 0's entries). Those other processes keep their
        own compiled programs here instead (``jax.experimental.serialize_executable``), keyed
        by ``program_key``, the process, its devices and ``options``: their second run
        compiles nothing either. A program that JAX's cache served is not kept again (it
        serves it next time too; and XLA:CPU cannot serialise an executable it deserialised:
        the copy fails to run). A file that cannot be read is compiled again, with a warning.
        """
        lowered = self.lower(name, function, static, dynamic)
        if not keeps_own_executables():
            return lowered.compile(options)
        path = self.folder / f"{executable_key(program_key(name, static, dynamic), options)}.exe"
        if path.exists():
            try:
                return serialize_executable.deserialize_and_load(*pickle.loads(path.read_bytes()))
            except Exception as error:  # noqa: BLE001  (a damaged file is compiled again)
                logging.warning("Ignoring the unreadable compiled program %s (%s).", path, error)
        served_before = _cache_hits_in_this_thread()
        compiled = lowered.compile(options)
        if _cache_hits_in_this_thread() != served_before:
            return compiled
        try:
            _write_atomically(self.folder, path.name,
                              pickle.dumps(serialize_executable.serialize(compiled)))  # fmt: skip
        except Exception as error:  # noqa: BLE001  (a program that cannot be kept still runs)
            logging.warning("Cannot keep compiled program %s in %s (%s).", name, self.folder, error)
        return compiled

    def _callable(self, name, function, static, dynamic):
        """The jitted exported program, or None if it cannot be exported."""
        key = program_key(name, static, dynamic)
        if key not in self._callables:
            self._callables[key] = self._load(key) or self._export(
                key, name, function, static, dynamic
            )
        return self._callables[key]

    def _load(self, key: str):
        path = self.folder / f"{key}.jax"
        if not path.exists():
            return None
        try:
            return jax.jit(export.deserialize(bytearray(path.read_bytes())).call)
        except Exception as error:  # noqa: BLE001  (a damaged file is exported again)
            logging.warning("Ignoring the unreadable exported program %s (%s).", path, error)
            return None

    def _export(self, key: str, name: str, function, static: Mapping, dynamic: Mapping):
        try:
            serialized = export.export(function)(**static, **dynamic).serialize()
        except Exception as error:  # noqa: BLE001  (jit still runs what export cannot keep)
            logging.warning(
                "Not keeping program %s on disk (%s); it is traced each run.", name, error
            )
            return None
        try:
            _write_atomically(self.folder, f"{key}.jax", serialized)
        except OSError as error:  # e.g. a read-only cache: run it, keep nothing
            logging.warning("Cannot keep program %s in %s (%s).", name, self.folder, error)
        return jax.jit(export.deserialize(serialized).call)


def keeps_own_executables() -> bool:
    """Whether this process keeps its compiled programs itself (``ProgramCache.compiled``):
    a process other than process 0 of a job of several, which JAX's cache does not serve."""
    return jax.process_count() > 1 and jax.process_index() != 0


_CACHE_HIT = "/jax/compilation_cache/cache_hits"
_cache_hits = threading.local()


@functools.cache
def _listen_for_cache_hits() -> None:
    def count(event: str, **_) -> None:
        if event == _CACHE_HIT:  # recorded in the thread that compiles
            _cache_hits.count = getattr(_cache_hits, "count", 0) + 1

    jax.monitoring.register_event_listener(count)


def _cache_hits_in_this_thread() -> int:
    """How many programs JAX's persistent cache has served to this thread so far."""
    _listen_for_cache_hits()
    return getattr(_cache_hits, "count", 0)


def executable_key(key: str, options) -> str:
    """The file name of a compiled program: ``program_key`` with this process, its
    devices, the XLA ``options`` and ``$XLA_FLAGS``."""
    parts = [
        key,
        f"process {jax.process_index()} of {jax.process_count()}",
        repr([(d.id, d.platform, d.device_kind) for d in jax.local_devices()]),
        repr(sorted((options or {}).items())),
        os.environ.get("XLA_FLAGS", ""),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _write_atomically(folder: pathlib.Path, name: str, content: bytes) -> None:
    """Writes ``folder/name`` through a temporary file and a rename: a crash never leaves a
    half-written program under its key."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as file:
        file.write(content)
    os.replace(file.name, folder / name)
