"""Flags of a job run as several processes (``attn_audit.distributed``), for the batch commands.

  python -m experiments.audit --workdir=RUN --coordinator_address=127.0.0.1:8476 \
      --num_processes=2 --process_id=0 &
  python -m experiments.audit --workdir=RUN --coordinator_address=127.0.0.1:8476 \
      --num_processes=2 --process_id=1

Every process runs the same command but ``--process_id``; each works on its share of the
split, and process 0 writes the records, summary and report once all are done.
"""

import os
import sys

from absl import flags, logging

from attn_audit import data, distributed

_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None,
    "host:port where process 0 of a job of several processes listens (its coordination "
    "service, without authentication: loopback only unless --trusted_network).",
)  # fmt: skip
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes of the job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's id, 0 to n - 1.")
_CLUSTER = flags.DEFINE_bool(
    "cluster", False,
    "Find the job's processes by JAX's cluster detection (TPU pods, SLURM, Open MPI) "
    "instead of the three flags above; needs --trusted_network.",
)  # fmt: skip
_TRUSTED_NETWORK = flags.DEFINE_bool(
    "trusted_network", False,
    "Allow a coordinator address that is not loopback: the network between the hosts is "
    "trusted (the coordination service has no authentication).",
)  # fmt: skip
_HEARTBEAT_TIMEOUT = flags.DEFINE_integer(
    "heartbeat_timeout", 60,
    "Seconds without heartbeats after which a process counts as dead and the others stop.",
)  # fmt: skip
_INITIALIZATION_TIMEOUT = flags.DEFINE_integer(
    "initialization_timeout", 120, "Seconds to wait for every process to join the job."
)
# Flags that may differ between the processes of one job.
PER_PROCESS_FLAGS = ("process_id",)


def command_settings(module) -> dict:
    """A command's flags by name (those defined in ``module`` and here) but the process id:
    what every process of a job must agree on."""
    holders = [*vars(module).values(), *globals().values()]
    return {
        holder.name: holder.value for holder in holders
        if isinstance(holder, flags.FlagHolder) and holder.name not in PER_PROCESS_FLAGS
    }  # fmt: skip


def join_job(settings: dict) -> None:
    """Joins the job of several processes the flags describe (none: a job of one process),
    then checks that every process runs with the same ``settings``.

    Raises:
      ValueError: bad or inconsistent flags, a job that could not start, or processes whose
        settings differ (one line each).
    """
    asked = (_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    if _CLUSTER.value:
        if any(value is not None for value in asked):
            raise ValueError("--cluster finds the processes itself: drop --coordinator_address, "
                             "--num_processes and --process_id.")  # fmt: skip
        distributed.connect(
            None, None, None, trusted_network=_TRUSTED_NETWORK.value,
            initialization_timeout_s=_INITIALIZATION_TIMEOUT.value,
            heartbeat_timeout_s=_HEARTBEAT_TIMEOUT.value,
        )  # fmt: skip
    elif any(value is not None for value in asked):
        distributed.connect(
            *asked, trusted_network=_TRUSTED_NETWORK.value,
            initialization_timeout_s=_INITIALIZATION_TIMEOUT.value,
            heartbeat_timeout_s=_HEARTBEAT_TIMEOUT.value,
        )  # fmt: skip
    if distributed.process_count() > 1:
        sys.excepthook = _exiting_at_once(sys.excepthook)
    distributed.check_same_settings(settings)
    if distributed.process_count() > 1:
        logging.info("Process %d of %d joined the job.", distributed.process_index(),
                     distributed.process_count())  # fmt: skip


def _exiting_at_once(hook):
    """``hook`` (the traceback of an uncaught error), then the end of the process without the
    shutdown handshake, as ``exit_with_error``."""

    def exit_at_once(kind, value, traceback):
        hook(kind, value, traceback)
        sys.stderr.flush()
        os._exit(1)

    return exit_at_once


def share(limit: int | None) -> data.Share:
    """This process's share of the split's first ``limit`` instances (all of them alone)."""
    return data.Share(distributed.process_index(), distributed.process_count(), limit)


def writes_results() -> bool:
    """Whether this process writes the job's summary and report (process 0); the others
    say so and stop."""
    if distributed.process_index() == 0:
        return True
    logging.info("Process %d of %d: done; process 0 writes the summary and report.",
                 distributed.process_index(), distributed.process_count())  # fmt: skip
    return False


def exit_with_error(error: Exception) -> None:
    """Ends the command with ``error: <message>``. In a job of several processes, an error of
    this process alone ends it at once (no shutdown handshake, which would wait for the
    others): they see it stop within ``--heartbeat_timeout`` and stop too. An error that
    every process raises (``SettingsDiffer``) ends them all through the handshake, so that
    process 0, which holds the coordinator, does not leave before the others are done."""
    if distributed.process_count() == 1:
        sys.exit(f"error: {error}")
    message = f"error: (process {distributed.process_index()}) {error}"
    if isinstance(error, distributed.SettingsDiffer):
        sys.exit(message)
    print(message, file=sys.stderr, flush=True)
    logging.flush()
    os._exit(1)
