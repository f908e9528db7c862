"""Connecting to the Ray cluster a profile names (`execution.address`), offline, failing closed.

`local` starts a cluster inside this process on `execution.workers` CPUs; `auto` joins the
cluster `ray start --head` runs on this host; `ray://host:10001` is a Ray client to a remote
head (a KubeRay cluster's head service). Usage statistics stay off (`RAY_USAGE_STATS_ENABLED=0`,
`pipelines.steps.offline`) and no dashboard is started: nothing is downloaded or reported.
"""

import logging
import socket
from collections.abc import Callable
from typing import TypeVar

from pipelines.steps.config import ExecutionConfig
from pipelines.steps.offline import enforce_offline

T = TypeVar("T")
LOCAL = "local"
CLIENT_PREFIX = "ray://"
REACH_SECONDS = 5.0
"""How long a `ray://` head may take to accept a connection (Ray's own client waits 30 s)."""
_CONNECTED: list[str] = []
"""The address this process connected to (a process talks to one Ray cluster)."""


class RayUnavailable(RuntimeError):
    """The Ray cluster named by `execution.address` cannot be used: the stage must not run."""


def connect(cfg: ExecutionConfig) -> None:
    """Connect this process to the cluster of `cfg.address` (once; later calls reuse it).

    Raises:
        RayUnavailable: The cluster cannot be reached or started, or this process is already
            connected to another one; the message names `execution.address`.
    """
    enforce_offline()
    import ray

    if ray.is_initialized():
        if _CONNECTED and _CONNECTED[-1] == cfg.address:
            return
        raise RayUnavailable(
            f"execution.address: this process is already connected to a Ray cluster "
            f"({_CONNECTED[-1] if _CONNECTED else 'started elsewhere'}), not {cfg.address}"
        )
    if cfg.address.startswith(CLIENT_PREFIX):
        _check_reachable(cfg.address)
    options: dict = {"log_to_driver": False, "logging_level": logging.WARNING}
    if cfg.address == LOCAL:
        options |= {"num_cpus": cfg.workers, "include_dashboard": False}
    try:
        ray.init(address=cfg.address, **options)  # "local": always a new cluster, never joined
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, TimeoutError, ...
        raise RayUnavailable(
            f"execution.address: cannot reach the Ray cluster at {cfg.address} "
            f"({type(exc).__name__}); start it (`ray start --head`) or set execution.address "
            "to local, auto or ray://host:10001"
        ) from None
    _CONNECTED.append(cfg.address)
    _quiet_ray_data()


def run_on_cluster(function: Callable[..., T], *args: object) -> T:
    """`function(*args)` run in a task on the cluster (no CPU of its own reserved), its result
    returned here.

    The stages drive their Ray Data pipelines from such a task: through a Ray client
    (`ray://`) this process has no core worker, and Ray Data cannot be driven from it.
    """
    import ray

    task = ray.remote(num_cpus=0, max_retries=0)(_quietly)
    return ray.get(task.remote(function, *args))


def _quietly(function: Callable[..., T], *args: object) -> T:
    _quiet_ray_data()
    return function(*args)


def _check_reachable(address: str) -> None:
    """Refuse at once when nothing accepts connections at a `ray://host:port` address."""
    host, _, port = address.removeprefix(CLIENT_PREFIX).rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=REACH_SECONDS).close()
    except OSError as exc:
        raise RayUnavailable(
            f"execution.address: nothing accepts connections at {address} "
            f"({type(exc).__name__}); is the Ray head's client server (port 10001) running and "
            "reachable from here?"
        ) from None


def _quiet_ray_data() -> None:
    """No progress bars, and Ray Data's per-dataset INFO lines (plans, log paths) kept out."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
