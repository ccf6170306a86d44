"""The endpoint's own Prometheus metrics (Ray metrics: exported by each node's metrics agent
with the ``ray_`` prefix). Ray Serve's metrics add batch sizes (``ray_serve_actual_batch_size``),
batch queues (``ray_serve_batch_queue_length``) and deployment queues
(``ray_serve_deployment_queued_queries``)."""

from __future__ import annotations

import functools

BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
LATENCY_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
# Routes named in metrics; anything else is "other" (bounded label values).
ROUTES = ("/v1/variants", "/v1/models", "/v1/styles", "/healthz", "/openapi.json", "/docs")


def route_label(path: str) -> str:
    return path if path in ROUTES else "other"


class Metrics:
    """Created once per process, inside a Serve replica (Ray metrics need a Ray worker)."""

    def __init__(self) -> None:
        from ray.util import metrics

        self.requests = metrics.Counter(
            "gan_http_requests", "HTTP requests by route and status code (4xx and 503 included).",
            tag_keys=("route", "status"))
        self.latency = metrics.Histogram(
            "gan_http_request_latency_seconds", "Latency of HTTP requests, by route and status code.",
            boundaries=LATENCY_BUCKETS_S, tag_keys=("route", "status"))
        self.images = metrics.Counter("gan_images_generated", "Images served, by model and style.",
                                      tag_keys=("model", "style"))
        self.pending = metrics.Gauge("gan_pending_images", "Images admitted and not yet answered (per ingress replica).")
        self.batch_images = metrics.Histogram(
            "gan_batch_images", "Images per batched forward pass of a StyleGenerator replica.",
            boundaries=BATCH_BUCKETS, tag_keys=("model",))
        self.batch_queue = metrics.Gauge("gan_batch_queue_images",
                                         "Images waiting for a replica's forward thread.", tag_keys=("model",))

    def record_batch(self, model: str, images: int, queued: int) -> None:
        self.batch_images.observe(images, tags={"model": model})
        self.batch_queue.set(queued, tags={"model": model})

    def observe(self, path: str, status: int, seconds: float) -> None:
        tags = {"route": route_label(path), "status": str(status)}
        self.requests.inc(tags=tags)
        self.latency.observe(seconds, tags=tags)


@functools.lru_cache(maxsize=1)
def metrics() -> Metrics:
    return Metrics()
