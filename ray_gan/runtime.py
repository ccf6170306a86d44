"""Connect to Ray: the cluster in ``RAY_ADDRESS`` (KubeRay, ``ray job submit``) or a
local one bound to loopback.

Workers inherit this process's environment, so the ``AWS_*`` variables reach every
stage without being copied into Ray's job config. A local Ray gets more logical CPUs than the machine has cores (at least 4): Ray Train
workers each hold a CPU for the whole run, and Ray Data still needs slots to read and
decode their input, or ingestion stalls on a 2-core machine.
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
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    log_level = logging.WARNING if quiet else logging.INFO
    if address:
        ray.init(address=address, logging_level=log_level)
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
        log_to_driver=True,
    )
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False
