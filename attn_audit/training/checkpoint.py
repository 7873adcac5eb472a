"""Checkpoints of a run: the latest training state and the best epoch's parameters.

Two ``orbax.checkpoint.CheckpointManager`` folders under ``<workdir>/checkpoints``:
``latest/`` (params and optimiser state after the last finished epoch, to resume)
and ``best/`` (the params of the epoch selected on dev). Each keeps one step,
numbered by epoch.
"""

import pathlib

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """A checkpoint is missing or unreadable; the message says what to do."""


class RunCheckpoints:
    """The ``latest`` and ``best`` checkpoints of one run folder."""

    def __init__(self, workdir: str | pathlib.Path):
        self.directory = pathlib.Path(workdir).resolve() / "checkpoints"
        options = ocp.CheckpointManagerOptions(max_to_keep=1, create=True)
        self._managers = {
            kind: ocp.CheckpointManager(self.directory / kind, options=options)
            for kind in ("latest", "best")
        }

    def save(self, kind: str, epoch: int, state) -> None:
        """Saves ``state`` (a pytree) as ``kind`` at ``epoch`` and waits until it is on disk."""
        manager = self._managers[kind]
        manager.save(epoch, args=ocp.args.StandardSave(state), force=True)
        manager.wait_until_finished()

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
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        try:
            state = manager.restore(epoch, args=ocp.args.StandardRestore(abstract))
        except Exception as error:  # orbax raises many kinds for damaged files
            raise CheckpointError(
                f"The {kind} checkpoint {self.directory / kind / str(epoch)} is unreadable "
                f"({type(error).__name__}: {error}). Delete that folder to fall back to an "
                "earlier state, or delete the run folder and train again."
            ) from None
        return epoch, state

    def close(self) -> None:
        for manager in self._managers.values():
            manager.close()
