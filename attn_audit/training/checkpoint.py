"""Checkpoints of a run: the latest training state and the best epoch's parameters.

Two ``orbax.checkpoint.CheckpointManager`` folders under ``<workdir>/checkpoints``:
``latest/`` (params and optimiser state after the last finished epoch, to resume)
and ``best/`` (the params of the epoch selected on dev). Each keeps one step,
numbered by epoch.

Each save also writes ``<kind>.sha256.json``: the epoch, a SHA-256 over every array's
dtype, shape and bytes, and the size and SHA-256 of every file saved. A restore first checks
the files (a missing, truncated or altered one is an error before orbax reads anything: an
orbax read that fails half-way leaves its other reads running, to report errors later),
then recomputes the arrays' SHA-256 and checks that every floating value is finite, so
damaged bytes or diverged parameters are an error, not a silent model.
"""

import hashlib
import json
import logging
import os
import pathlib

import jax
import numpy as np
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """A checkpoint is missing or unreadable; the message says what to do."""


class RunCheckpoints:
    """The ``latest`` and ``best`` checkpoints of one run folder."""

    def __init__(self, workdir: str | pathlib.Path):
        self.directory = pathlib.Path(workdir).resolve() / "checkpoints"
        # Each process of a job of several (attn_audit.distributed) reads the checkpoint on
        # its own, whole, onto its own devices: orbax sees one process, this one.
        me = jax.process_index()
        alone = ocp.options.MultiprocessingOptions(
            primary_host=me, active_processes={me}, barrier_sync_key_prefix=f"process{me}"
        )
        options = ocp.CheckpointManagerOptions(
            max_to_keep=1, create=False, multiprocessing_options=alone
        )
        self._managers = {}
        for kind in ("latest", "best"):
            (self.directory / kind).mkdir(parents=True, exist_ok=True)
            self._managers[kind] = ocp.CheckpointManager(self.directory / kind, options=options)

    def save(self, kind: str, epoch: int, state) -> None:
        """Saves ``state`` (a pytree) as ``kind`` at ``epoch``, waits until it is on disk, then
        writes its checksum."""
        manager = self._managers[kind]
        if epoch in manager.all_steps():  # left by a run killed after saving it: redo it
            manager.delete(epoch)
        manager.save(epoch, args=ocp.args.StandardSave(state), force=True)
        manager.wait_until_finished()
        record = self._checksum_file(kind)
        partial = record.with_name(record.name + ".tmp")
        files = _file_records(self.directory / kind / str(epoch))
        partial.write_text(json.dumps({"epoch": epoch, "sha256": checksum(state), "files": files}))
        os.replace(partial, record)

    def _checksum_file(self, kind: str) -> pathlib.Path:
        return self.directory / f"{kind}.sha256.json"

    def latest_epoch(self, kind: str = "latest") -> int | None:
        return self._managers[kind].latest_step()

    def restore(self, kind: str, template):
        """Restores ``kind`` into the structure, shapes and dtypes of ``template``.

        Returns:
          ``(epoch, state)``.
        """
        manager = self._managers[kind]
        epoch = manager.latest_step()
        if epoch is None:
            raise CheckpointError(
                f"No {kind} checkpoint in {self.directory / kind}. Train the run first "
                "(python -m experiments.train --workdir=...)."
            )
        self._check_files(kind, epoch)
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        abstract = jax.tree.map(
            lambda x: ocp.utils.to_shape_dtype_struct(x).update(sharding=device), template
        )
        try:
            state = manager.restore(epoch, args=ocp.args.StandardRestore(abstract))
        except Exception as error:  # orbax raises many kinds for damaged files
            reason = str(error).split(" [tensorstore_spec=")[0]
            raise CheckpointError(
                f"The {kind} checkpoint {self.directory / kind / str(epoch)} is unreadable "
                f"({type(error).__name__}: {reason[:400]}). Delete that folder to fall back to "
                "an earlier state, or delete the run folder and train again."
            ) from None
        self._verify(kind, epoch, state)
        return epoch, state

    def _check_files(self, kind: str, epoch: int) -> None:
        """Every file the save wrote is there, at its size and with its SHA-256: a missing,
        truncated or altered file is an error here, before orbax reads it (whose failure
        half-way leaves reads running that report errors later). Records written before
        the files' SHA-256 was kept hold sizes only."""
        record = self._checksum_file(kind)
        saved = json.loads(record.read_text()) if record.exists() else {}
        if saved.get("epoch") != epoch or "files" not in saved:
            return
        folder = self.directory / kind / str(epoch)
        sizes = {name: path.stat().st_size for name, path in _files(folder).items()}
        for name, saved_file in saved["files"].items():
            size, digest = (saved_file, None) if isinstance(saved_file, int) else saved_file
            problem = None
            if name not in sizes:
                problem = "is missing"
            elif sizes[name] != size:
                problem = f"has {sizes[name]} bytes, not the {size} saved"
            elif digest is not None and _file_sha256(folder / name) != digest:
                problem = "differs from the one saved (SHA-256 mismatch)"
            if problem:
                raise CheckpointError(
                    f"The {kind} checkpoint {folder} is damaged: its file {name} {problem}. "
                    + ("Delete the run folder and train again." if kind == "best" else
                       f"Delete {folder} and resume from an earlier epoch, or delete the run "
                       "folder and train again.")
                )  # fmt: skip

    def _verify(self, kind: str, epoch: int, state) -> None:
        where = self.directory / kind / str(epoch)
        remedy = ("Delete the run folder and train again" if kind == "best" else
                  f"Delete {where} and resume from an earlier epoch, or delete the run "
                  "folder and train again")  # fmt: skip
        record = self._checksum_file(kind)
        saved = json.loads(record.read_text()) if record.exists() else None
        if saved is None or saved.get("epoch") != epoch:
            logging.warning("%s has no checksum (written by an older version, or interrupted "
                            "before it); it is loaded unverified.", where)  # fmt: skip
        elif saved["sha256"] != checksum(state):
            raise CheckpointError(
                f"The {kind} checkpoint {where} is damaged: its arrays differ from the ones "
                f"saved (SHA-256 mismatch against {record.name}). {remedy}."
            )
        for path, leaf in jax.tree_util.tree_leaves_with_path(state):
            leaf = np.asarray(leaf)
            if np.issubdtype(leaf.dtype, np.floating) and not np.isfinite(leaf).all():
                raise CheckpointError(
                    f"The {kind} checkpoint {where} holds NaN or inf in "
                    f"{jax.tree_util.keystr(path)}: the model diverged before it was saved. "
                    f"{remedy} with a lower learning rate."
                )

    def close(self) -> None:
        for manager in self._managers.values():
            manager.close()


def _files(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    return {str(path.relative_to(folder)): path
            for path in sorted(folder.rglob("*")) if path.is_file()}  # fmt: skip


def _file_sha256(path: pathlib.Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _file_records(folder: pathlib.Path) -> dict[str, tuple[int, str]]:
    """``{path relative to folder: (bytes, SHA-256)}`` for every file under ``folder``."""
    return {name: (path.stat().st_size, _file_sha256(path))
            for name, path in _files(folder).items()}  # fmt: skip


def checksum(state) -> str:
    """SHA-256 over every leaf of ``state`` in tree order: its dtype, shape and bytes."""
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(state):
        leaf = np.ascontiguousarray(jax.device_get(leaf))
        digest.update(f"{leaf.dtype}{leaf.shape}".encode())
        digest.update(leaf.tobytes())
    return digest.hexdigest()
