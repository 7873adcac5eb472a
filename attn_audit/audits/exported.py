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
import tempfile
from collections.abc import Mapping

import jax
from jax import export

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

    def compile(self, name: str, function, static: Mapping, dynamic: Mapping):
        """Loads or exports the program and compiles it, without running it."""
        self.lower(name, function, static, dynamic).compile()

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
            self.folder.mkdir(parents=True, exist_ok=True)
            # Write then rename: a crash never leaves a half-written program under its key.
            with tempfile.NamedTemporaryFile(dir=self.folder, suffix=".tmp", delete=False) as file:
                file.write(serialized)
            os.replace(file.name, self.folder / f"{key}.jax")
        except OSError as error:  # e.g. a read-only cache: run it, keep nothing
            logging.warning("Cannot keep program %s in %s (%s).", name, self.folder, error)
        return jax.jit(export.deserialize(serialized).call)
