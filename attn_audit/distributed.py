"""Several processes, one job: JAX's multi-controller runtime (``jax.distributed``).

A job (audit, explain, faithfulness) runs as ``num_processes`` processes, one per host or
several on one machine, each started with its ``process_id``. Each process reads and
tokenises only its share of the split (``data.Share``: every ``num_processes``-th
instance) and runs it on its own devices, whose mesh shards every batch
(``batch_engine``); records go to its own parts folder, atomically per batch
(``batch_runner``), and process 0 merges them once every process is done.

The processes exchange only small things, through the coordination service that
``jax.distributed.initialize`` starts in process 0: the split's lengths (so every process
pads to the widths one process would choose, and writes the same records, bit for bit),
their settings (which must agree) and barriers. The batch programs exchange nothing (each
instance is independent), so no process waits for another between batches, and no
program moves rows between hosts.

A process that dies (even by SIGKILL) stops sending heartbeats; after
``heartbeat_timeout_s`` the service ends the other processes with a message that names it.
Running the same command again resumes every process from its finished batches.

Security: the coordination service has no authentication: anyone who can reach its port
can join the job or read what the processes exchange. ``connect`` binds it to the
address given (not to every interface, JAX's default) and refuses an address that is not
loopback unless ``trusted_network`` says the network between the hosts is trusted.
"""

import io
import ipaddress
import json
import socket
import time
import zlib

import jax
import numpy as np

# How long a process waits for the others at an exchange (they may still be reading the
# data) and at the end of its batches (they may still be running theirs). A process that
# dies is found sooner, by the heartbeats.
EXCHANGE_TIMEOUT_S = 3600
FINISH_TIMEOUT_S = 7 * 24 * 3600

_exchanges = [0]  # exchanges made by this process: every process makes the same ones


def process_count() -> int:
    """The job's processes (1 without ``connect``)."""
    return jax.process_count()


def process_index() -> int:
    """This process's id (0 without ``connect``)."""
    return jax.process_index()


def is_loopback(address: str) -> bool:
    """Whether ``host:port``'s host is this machine only (127.0.0.0/8, ::1, a name that
    resolves to nothing else)."""
    host = address.rsplit(":", 1)[0].strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name
        try:
            found = socket.getaddrinfo(host, None)
        except OSError:
            return False
        return bool(found) and all(ipaddress.ip_address(f[4][0]).is_loopback for f in found)


def connect(
    coordinator_address: str | None, num_processes: int | None, process_id: int | None, *,
    trusted_network: bool = False, initialization_timeout_s: int = 120,
    heartbeat_timeout_s: int = 60,
) -> None:  # fmt: skip
    """Joins this process to its job (``jax.distributed.initialize``); call before any JAX
    computation.

    Args:
      coordinator_address: ``host:port`` of process 0, where the coordination service
        listens; None: found by JAX's cluster detection (TPU pods, SLURM, Open MPI), with
        ``num_processes`` and ``process_id`` None too.
      num_processes, process_id: the job's processes and this one's id in ``[0, n)``.
      trusted_network: allows a coordinator address that is not loopback (the service
        has no authentication; see the module docstring).
      initialization_timeout_s: how long to wait for every process to join.
      heartbeat_timeout_s: after this long without heartbeats, a process counts as dead
        and the others stop with a message.

    Raises:
      ValueError: a process id out of range, an address that is not loopback without
        ``trusted_network``, or a job that could not start (coordinator unreachable, its
        port taken, a process missing); one line that says what to do.
    """
    if coordinator_address is None:
        if num_processes is not None or process_id is not None:
            raise ValueError("Give --coordinator_address with --num_processes and --process_id.")
        if not trusted_network:
            raise ValueError(
                "A cluster's coordinator listens on its network without authentication; "
                "pass --trusted_network if the network between its hosts is trusted."
            )
        timeouts = dict(initialization_timeout=initialization_timeout_s,
                        heartbeat_timeout_seconds=heartbeat_timeout_s)  # fmt: skip
        _initialize(timeouts, "the cluster's coordinator")
        return
    if num_processes is None or process_id is None:
        raise ValueError("Give --num_processes and --process_id with --coordinator_address.")
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise ValueError(
            f"Process id {process_id} is not in [0, {num_processes}): give each of the "
            f"{num_processes} processes its own --process_id from 0 to {num_processes - 1}."
        )
    if ":" not in coordinator_address or not coordinator_address.rsplit(":", 1)[1].isdigit():
        raise ValueError(
            f"The coordinator address {coordinator_address!r} is not host:port "
            "(e.g. 127.0.0.1:8476)."
        )
    if not trusted_network and not is_loopback(coordinator_address):
        raise ValueError(
            f"The coordinator address {coordinator_address} is not loopback, and the "
            "coordination service has no authentication: anyone who reaches it can join the "
            "job. Use 127.0.0.1 for processes on this machine, or pass --trusted_network if "
            "the network between the hosts is trusted."
        )
    # JAX's client ends the process (a C++ fatal error, no Python exception) when it cannot
    # reach the coordinator: check the address first, for a message that says what to do.
    if process_id == 0:
        _require_free_port(coordinator_address)
    else:
        _wait_for_coordinator(coordinator_address, initialization_timeout_s)
    settings = dict(
        coordinator_address=coordinator_address, num_processes=num_processes,
        process_id=process_id, coordinator_bind_address=coordinator_address,
        initialization_timeout=initialization_timeout_s,
        heartbeat_timeout_seconds=heartbeat_timeout_s,
    )  # fmt: skip
    _initialize(settings, f"the coordinator at {coordinator_address}")


def _host_and_port(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host.strip("[]"), int(port)


def _require_free_port(address: str) -> None:
    """Raises ValueError unless process 0 can listen on ``address``."""
    host, port = _host_and_port(address)
    try:
        family = socket.getaddrinfo(host, port)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        raise ValueError(
            f"Process 0 cannot listen on {address} ({error.strerror or error}): choose a free "
            "port of this host for --coordinator_address, the same in every process."
        ) from None


def _wait_for_coordinator(address: str, timeout_s: float) -> None:
    """Raises ValueError unless something listens on ``address`` within ``timeout_s``."""
    host, port = _host_and_port(address)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError as error:
            if time.monotonic() >= deadline:
                raise ValueError(
                    f"No coordinator answered at {address} within {timeout_s} s "
                    f"({error.strerror or error}): start process 0 of the job (it listens "
                    "there), with the same --coordinator_address in every process."
                ) from None
            time.sleep(0.2)


def _initialize(settings: dict, coordinator: str) -> None:
    try:
        jax.distributed.initialize(**settings)
    except (RuntimeError, ValueError) as error:  # JaxRuntimeError is a RuntimeError
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise ValueError(
            f"The job could not start with {coordinator} ({first_line[:300]}). Start every "
            "process with the same --coordinator_address and --num_processes, process 0 on "
            "the host of that address with its port free, within "
            f"{settings['initialization_timeout']} s of each other."
        ) from None


def _client():
    from jax._src import distributed as jax_distributed  # the runtime's key-value store

    return jax_distributed.global_state.client


def _key(name: str) -> str:
    _exchanges[0] += 1
    return f"attn_audit/{_exchanges[0]}/{name}"


def all_gather(name: str, array: np.ndarray, timeout_s: int = EXCHANGE_TIMEOUT_S) -> list:
    """Every process's ``array`` (any shape and dtype; small: it travels through the
    coordinator), as numpy arrays in process order; ``[array]`` in a job of one process.

    Every process must call it, with the same ``name``, in the same order of exchanges.
    """
    if process_count() == 1:
        return [np.asarray(array)]
    key, me = _key(name), process_index()
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    client = _client()
    client.key_value_set_bytes(f"{key}/{me}", zlib.compress(buffer.getvalue()))
    found = []
    for process in range(process_count()):
        try:
            value = client.blocking_key_value_get_bytes(f"{key}/{process}", timeout_s * 1000)
        except Exception as error:  # noqa: BLE001 (the runtime's own error types)
            raise RuntimeError(
                f"Process {process} did not send its {name} within {timeout_s} s "
                f"({str(error).splitlines()[0][:200]}); is it running, with the same flags?"
            ) from None
        found.append(np.load(io.BytesIO(zlib.decompress(value)), allow_pickle=False))
    return found


def barrier(name: str, timeout_s: int = FINISH_TIMEOUT_S) -> None:
    """Waits until every process reaches the barrier ``name``; no-op in one process.

    Raises:
      RuntimeError: a process did not come within ``timeout_s``, or one died.
    """
    if process_count() == 1:
        return
    try:
        _client().wait_at_barrier(_key(name), timeout_s * 1000)
    except Exception as error:  # noqa: BLE001 (the runtime's own error types)
        raise RuntimeError(
            f"Not every process reached '{name}' within {timeout_s} s "
            f"({str(error).splitlines()[0][:300]}); see the other processes' logs."
        ) from None


class SettingsDiffer(ValueError):
    """The processes of a job run with other settings; every process raises it."""


def check_same_settings(settings: dict) -> None:
    """Raises ``SettingsDiffer`` (a ValueError), naming the settings that differ, in every
    process, unless every process of the job runs with the same ``settings`` (JSON-able:
    e.g. the command's flags but the process id). No-op in one process."""
    text = json.dumps(settings, sort_keys=True, default=str)
    every = all_gather("settings", np.frombuffer(text.encode(), np.uint8))
    # Every process has read every other's before any stops (process 0 holds the store).
    barrier("settings compared", EXCHANGE_TIMEOUT_S)
    mine, settings = process_index(), json.loads(text)
    for process, found in enumerate(every):
        theirs = json.loads(found.tobytes().decode())
        if theirs != settings:
            differ = sorted(k for k in settings.keys() | theirs.keys()
                            if settings.get(k) != theirs.get(k))  # fmt: skip
            detail = ", ".join(
                f"--{k}: {settings.get(k)!r} here, {theirs.get(k)!r} there" for k in differ[:5]
            )
            raise SettingsDiffer(
                f"Process {process} runs with other settings than process {mine} ({detail}); "
                "start every process of a job with the same flags but --process_id."
            )
