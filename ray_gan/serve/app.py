"""The HTTP endpoint as one Ray Serve application, built from one :class:`ServeConfig`.

Deployments (all options come from the config, whether it arrives through
``ray-gan serve --config serve.yaml`` or as the args of the Helm chart's ``serveConfigV2``):

* ``VariantsAPI`` (:mod:`ray_gan.serve.api`): the FastAPI ingress, ``ingress_replicas``
  replicas of ``ingress_cpus``; ``ingress_max_ongoing_requests`` requests each and
  ``ingress_max_queued_requests`` queued before Serve answers 503 with Retry-After; HTTP
  reaches it directly (``ingress: direct``, see :func:`direct_ingress_env`) or through Ray's
  HTTP proxy (``ingress: proxy``);
* ``StyleGenerator-<model>`` (:mod:`ray_gan.serve.generator`): one deployment per served
  model, ``num_replicas`` (or autoscaling between ``min_replicas`` and ``max_replicas``
  aiming at ``target_ongoing_requests``) of ``num_cpus``/``num_gpus``; each replica holds
  ``max_ongoing_requests`` sub-requests (its batch queue: more than a batch, or batches
  never fill and autoscaling never sees load) and callers queue ``max_queued_requests``.

Each model is pinned here, when the app is built (deployed): to its checkpoint step (the
latest unless the config names one) and that checkpoint's EMA weights sha256, which every
replica verifies as it loads, and every response states.

``serveConfigV2``: ``import_path: ray_gan.serve.app:build_app`` with ``args`` = a ServeConfig.
"""

from __future__ import annotations

import socket
import time

from ray import serve

from ray_gan import storage
from ray_gan.config import ServeConfig, ServeModel
from ray_gan.serve.api import VariantsAPI
from ray_gan.serve.auth import check_exposure
from ray_gan.serve.generator import StyleGenerator


def pin(model: ServeModel) -> ServeModel:
    """``model`` with its URI normalised and its checkpoint step and weights sha256 fixed
    (raises if the checkpoint is missing or its weights are not the pinned ones)."""
    from ray_gan.checkpoint import read_model_info

    info = read_model_info(model.uri, model.step, model.weights_sha256)
    return ServeModel(name=model.name, uri=storage.normalize(model.uri), step=info.step,
                      weights_sha256=info.weights_sha256)


def deployment_name(model: str) -> str:
    return f"StyleGenerator-{model}"


def build_app(args: dict) -> serve.Application:
    """Application builder (``serve run ray_gan.serve.app:build_app model=...``)."""
    from ray.serve.config import BackpressureConfig

    cfg = ServeConfig(**args)
    check_exposure(cfg.host, cfg.auth)
    cfg = cfg.model_copy(update={"models": [pin(m) for m in cfg.models]})
    r, lim = cfg.replicas, cfg.limits
    backpressure = BackpressureConfig(status_code=503, retry_after_s=lim.retry_after_s)
    logging_config = {"enable_access_log": cfg.access_log}
    scale = ({"autoscaling_config": {"min_replicas": r.min_replicas, "max_replicas": r.max_replicas,
                                     "target_ongoing_requests": r.target_ongoing_requests}}
             if r.autoscaling else {"num_replicas": r.num_replicas})
    generators = {
        m.name: StyleGenerator.options(
            name=deployment_name(m.name), max_ongoing_requests=lim.max_ongoing_requests,
            max_queued_requests=lim.max_queued_requests, backpressure_config=backpressure,
            ray_actor_options={"num_cpus": r.num_cpus, "num_gpus": r.num_gpus}, logging_config=logging_config,
            **scale,
        ).bind(m.model_dump(), cfg.batching.model_dump())
        for m in cfg.models
    }
    return VariantsAPI.options(
        num_replicas=r.ingress_replicas, max_ongoing_requests=lim.ingress_max_ongoing_requests,
        max_queued_requests=lim.ingress_max_queued_requests, backpressure_config=backpressure,
        ray_actor_options={"num_cpus": r.ingress_cpus}, logging_config=logging_config,
    ).bind(cfg.model_dump(mode="json"), generators)


def direct_ingress_env(cfg: ServeConfig) -> dict[str, str]:
    """Ray Serve's settings for ``ingress: direct`` on a cluster that ``ray-gan serve``
    starts Serve on (the environment of Serve's controller, which its proxy and replicas
    inherit); empty for ``ingress: proxy``. On KubeRay the chart sets the pods' instead
    (with HAProxy on the Serve port)."""
    if cfg.ingress == "proxy":
        return {}
    return {
        # Ray's documented high-throughput mode: ingress replicas serve HTTP themselves
        # (no Python proxy hop) and deployments call each other over gRPC.
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        # The ingress replicas' HTTP servers: port, port + 1, … one per ingress replica
        # (Ray's range excludes its maximum).
        "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(cfg.port),
        "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(cfg.port + cfg.replicas.ingress_replicas),
        # Ray holds a stopping ingress replica open, and its port out of use, for a load
        # balancer to deregister it; a local endpoint has none in front, and a replica
        # that restarts must get its port back at once.
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "0",
        "RAY_SERVE_PORT_QUARANTINE_S": "0",
    }


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _answers(host: str, port: int, timeout_s: float = 30.0) -> bool:
    """Whether GET /healthz on host:port answers 200 within ``timeout_s``."""
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=5) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


def run_server(cfg: ServeConfig, blocking: bool = True) -> None:
    """``ray-gan serve``: start Serve and deploy the app as ``ray-gan``, answering on
    ``cfg.host``:``cfg.port`` (``ingress: direct``: the ingress replica itself, Ray's proxy
    on a free port; ``proxy``: Ray's proxy)."""
    from ray_gan.runtime import init_ray

    check_exposure(cfg.host, cfg.auth)
    init_ray()
    env = direct_ingress_env(cfg)
    serve.start(http_options={"host": cfg.host, "port": _free_port(cfg.host) if env else cfg.port},
                controller_options={"runtime_env": {"env_vars": env}} if env else None)
    serve.run(build_app(cfg.model_dump(mode="json")), name="ray-gan", route_prefix="/", blocking=False)
    if not _answers(cfg.host, cfg.port):
        raise RuntimeError(
            f"the app is deployed but nothing answers on {cfg.host}:{cfg.port}. A Serve instance that was already "
            f"running on this Ray cluster keeps the settings it started with (ingress: {cfg.ingress} needs "
            f"{'its own' if env else 'Ray’s HTTP proxy on this port'}): run `serve shutdown` first, or set "
            f"ingress: {'proxy' if env else 'direct'}")
    if blocking:
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            serve.shutdown()
