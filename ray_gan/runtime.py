"""Connect to Ray: the cluster in ``RAY_ADDRESS`` (KubeRay, ``ray job submit``) or a
local one bound to loopback.

Workers inherit this process's environment, so the ``AWS_*`` variables reach every
stage without being copied into Ray's job config. A local Ray gets more logical CPUs than the machine has cores (at least 4): Ray Train
workers each hold a CPU for the whole run, and Ray Data still needs slots to read and
decode their input, or ingestion stalls on a 2-core machine.

When the CLI made a quiet console (:func:`ray_gan.console.configure`, the default
without ``--verbose``), Ray says nothing on the terminal: workers' output stays in the
session's log folder (``log_to_driver=False``), and the driver's own Ray logs (at INFO)
go to the console's log file. Ray Data's progress bars are off either way: the stages
draw their own (:class:`ray_gan.console.Progress`).
"""

from __future__ import annotations

import logging
import os

import ray

LOCAL_MIN_CPUS = 4


def local_num_cpus() -> int:
    return max(LOCAL_MIN_CPUS, 2 * (os.cpu_count() or 1))


def init_ray(address: str | None = None, num_cpus: int | None = None, quiet: bool = True,
             metrics_port: int | None = None) -> None:
    """Idempotent: does nothing when Ray is already initialised in this process.

    ``metrics_port`` (or env ``RAY_GAN_METRICS_PORT``) fixes the port where a local Ray
    exports Prometheus metrics (Ray's own and ray_gan's); by default Ray picks one.
    """
    from ray_gan import console

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    hush = console.quiet()
    if hush:
        console.route_ray_logs()  # Ray's loggers and the raylet's messages → the log file
    # Quiet: INFO to the log file and nothing from the workers; else as Ray prints it.
    log_level = logging.INFO if hush or not quiet else logging.WARNING
    if address:
        ray.init(address=address, logging_level=log_level, log_to_driver=not hush)
        _after_init()
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    port = metrics_port or (int(os.environ["RAY_GAN_METRICS_PORT"]) if os.environ.get("RAY_GAN_METRICS_PORT") else None)
    extra = {"_metrics_export_port": port} if port else {}
    ray.init(
        num_cpus=num_cpus or local_num_cpus(),
        **extra,
        include_dashboard=True,  # on 127.0.0.1; Ray Train's controller needs the state API it serves
        _node_ip_address="127.0.0.1",
        logging_level=log_level,
        log_to_driver=not hush,
    )
    _after_init()


def _after_init() -> None:
    from ray.data import DataContext

    from ray_gan import console

    DataContext.get_current().enable_progress_bars = False
    try:  # where this Ray session keeps its logs (workers' output), named at the end
        console.note_ray_session(ray._private.worker._global_node.get_session_dir_path())
    except AttributeError:
        pass
