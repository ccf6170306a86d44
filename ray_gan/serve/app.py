"""The HTTP endpoint: a Ray Serve app with a FastAPI ingress and a batching generator.

Deployments:

* ``VariantsAPI`` (CPU, FastAPI ingress): validates requests, fans them out to
  ``StyleGenerator`` and encodes the reply.
* ``StyleGenerator`` (the GPU one in production: set ``num_gpus``): holds the EMA
  generator; ``@serve.batch`` merges concurrent requests into one forward pass. Render
  rules are those of :mod:`ray_gan.generate.render`, so an HTTP image is byte-identical
  to the batch job's image for the same (model, style, seed, truncation) and device.

Endpoints: ``POST /v1/variants``, ``GET /v1/styles``, ``GET /healthz``. Invalid bodies
(wrong types, unknown fields, unknown styles, too many images) get 422 with a message.

Metrics (Ray metrics, exported on each node's metrics port): ``ray_gan_variant_requests``
(by status), ``ray_gan_images_generated`` (by style), ``ray_gan_request_latency_seconds``.

For KubeRay ``serveConfigV2``: ``import_path: ray_gan.serve.app:build_app`` with args
``{model, max_batch_size, batch_wait_timeout_s}``.
"""

# No `from __future__ import annotations` here: FastAPI must see the real
# VariantsRequest annotation to read it from the JSON body.
import base64
import hashlib
import json
import math
import time
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve.handle import DeploymentHandle

from ray_gan import storage
from ray_gan.config import MixSpec, ServeConfig, VariantsRequest
from ray_gan.generate.controls import ControlError, check_controls, model_controls

MAX_IMAGES_PER_REQUEST = 256

api = FastAPI(title="ray_gan", description="Style-diverse GAN image variants", version="1")


def json_safe(value: Any) -> Any:
    """``value`` with what JSON cannot carry (Infinity, NaN, exception objects in pydantic's
    error context) turned into strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


@api.exception_handler(RequestValidationError)
async def _invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
    # pydantic's errors echo the input they reject, which may be a float JSON cannot
    # carry (an edit strength of Infinity): FastAPI's own handler would then fail with a 500.
    return JSONResponse(status_code=422, content={"detail": json_safe(exc.errors())})


def replica_device(gpu_ids: list) -> str:
    """A replica renders on a GPU only when Ray assigned it one (``num_gpus`` > 0): a replica
    given none stays on the CPU even on a node that has GPUs, which other work holds."""
    return "cuda" if gpu_ids else "cpu"


@serve.deployment(name="StyleGenerator", ray_actor_options={"num_cpus": 1})
class StyleGenerator:
    def __init__(self, model: str, max_batch_size: int = 16, batch_wait_timeout_s: float = 0.02) -> None:
        import ray

        from ray_gan.generate.render import Renderer

        self.renderer = Renderer(model, replica_device(ray.get_gpu_ids()))
        self.generate_batch.set_max_batch_size(max_batch_size)
        self.generate_batch.set_batch_wait_timeout_s(batch_wait_timeout_s)

    def info(self) -> dict[str, Any]:
        i = self.renderer.info
        return {"model": i.uri, "styles": i.styles, "step": i.step, "weights_sha256": i.weights_sha256,
                "resolution": i.config.resolution, "architecture": i.config.arch,
                "device": self.renderer.device.type, "controls": model_controls(i, self.renderer.G, renderer=self.renderer)}

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.02)
    async def generate_batch(self, requests: list[dict]) -> list[list[dict]]:
        from ray_gan.images import encode

        styles, seeds, truncs, owner, groups = [], [], [], [], []
        for r, req in enumerate(requests):
            key = json.dumps([req.get("mix"), req.get("edits") or {}], sort_keys=True)
            for s, t in zip(req["style_indices"], req["truncations"]):
                for j in range(req["n"]):
                    styles.append(s)
                    seeds.append(req["seed"] + j)
                    truncs.append(t)
                    owner.append(r)
                    groups.append(key)
        # One render per distinct (mixing, edits) — normally one. An image's bytes do not
        # depend on which other requests it was batched with (fixed micro-batches).
        results: list[list[dict]] = [[] for _ in requests]
        images: dict[int, Any] = {}
        for key in sorted(set(groups)):
            mix, edits = json.loads(key)
            idx = [k for k, g in enumerate(groups) if g == key]
            rendered = self.renderer.render([styles[k] for k in idx], [seeds[k] for k in idx],
                                            [truncs[k] for k in idx], mix=MixSpec(**mix) if mix else None,
                                            edits=edits or None)
            images.update(zip(idx, rendered))
        names = self.renderer.info.styles
        for k in range(len(seeds)):
            data = encode(images[k], "png")
            results[owner[k]].append({
                "style": names[styles[k]], "seed": seeds[k], "truncation": truncs[k],
                "mix": json.loads(groups[k])[0], "edits": json.loads(groups[k])[1],
                "width": int(images[k].shape[1]), "height": int(images[k].shape[0]),
                "sha256": hashlib.sha256(data).hexdigest(), "png_base64": base64.b64encode(data).decode(),
            })
        return results

    async def generate(self, request: dict) -> list[dict]:
        return await self.generate_batch(request)


@serve.deployment(name="VariantsAPI", ray_actor_options={"num_cpus": 0.5})
@serve.ingress(api)
class VariantsAPI:
    def __init__(self, generator: DeploymentHandle) -> None:
        from ray.util import metrics

        self.generator = generator
        self._info: dict | None = None
        self.requests = metrics.Counter("gan_variant_requests", "Variant requests by outcome.", tag_keys=("status",))
        self.images = metrics.Counter("gan_images_generated", "Images generated, by style.", tag_keys=("style",))
        self.latency = metrics.Histogram(
            "gan_request_latency_seconds", "End-to-end latency of POST /v1/variants.",
            boundaries=[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
        )

    async def _model_info(self) -> dict:
        if self._info is None:
            self._info = await self.generator.info.remote()
        return self._info

    @api.get("/healthz")
    async def healthz(self) -> dict:
        info = await self._model_info()
        return {"status": "ok", "model": info["model"], "step": info["step"]}

    @api.get("/v1/styles")
    async def styles(self) -> dict:
        info = await self._model_info()
        return {"styles": info["styles"], "model": info["model"], "step": info["step"],
                "resolution": info["resolution"], "weights_sha256": info["weights_sha256"]}

    @api.post("/v1/variants")
    async def variants(self, body: VariantsRequest) -> dict:
        t0 = time.perf_counter()
        info = await self._model_info()
        unknown = [s for s in body.styles if s not in info["styles"]]
        if unknown:
            self.requests.inc(tags={"status": "invalid"})
            raise HTTPException(422, detail=f"unknown style(s) {unknown}; available: {info['styles']}")
        if len(body.styles) * body.n > MAX_IMAGES_PER_REQUEST:
            self.requests.inc(tags={"status": "invalid"})
            raise HTTPException(
                422, detail=f"{len(body.styles)} styles × n={body.n} exceeds {MAX_IMAGES_PER_REQUEST} images"
            )
        try:
            check_controls(info["controls"], body.truncation, body.mix, body.edits)
        except ControlError as e:
            self.requests.inc(tags={"status": "invalid"})
            raise HTTPException(422, detail=str(e)) from None
        req = {"style_indices": [info["styles"].index(s) for s in body.styles], "n": body.n, "seed": body.seed,
               "truncations": [body.truncation_for(s) for s in body.styles],
               "mix": body.mix.model_dump() if body.mix else None, "edits": body.edits}
        try:
            images = await self.generator.generate.remote(req)
        except Exception:
            self.requests.inc(tags={"status": "error"})
            raise
        for s in body.styles:
            self.images.inc(body.n, tags={"style": s})
        self.requests.inc(tags={"status": "ok"})
        self.latency.observe(time.perf_counter() - t0)
        return {"model": info["model"], "step": info["step"], "weights_sha256": info["weights_sha256"],
                "images": images}


def build_app(args: dict) -> serve.Application:
    """Application builder (``serve run ray_gan.serve.app:build_app model=...``)."""
    cfg = ServeConfig(**args)
    cfg.model = storage.normalize(cfg.model)  # replicas do not share the driver's working directory
    generator = StyleGenerator.options(
        num_replicas=cfg.num_replicas,
        # A replica must accept at least a full batch of requests at once, or @serve.batch
        # never fills its batches (Ray's default max_ongoing_requests is 5).
        max_ongoing_requests=2 * cfg.max_batch_size,
        ray_actor_options={"num_cpus": cfg.num_cpus, "num_gpus": cfg.num_gpus},
    ).bind(cfg.model, cfg.max_batch_size, cfg.batch_wait_timeout_s)
    return VariantsAPI.bind(generator)


def run_server(cfg: ServeConfig, blocking: bool = True) -> None:
    """``ray-gan serve``: start Serve on ``cfg.host``:``cfg.port`` and deploy the app as ``ray-gan``."""
    from ray_gan.runtime import init_ray

    init_ray()
    serve.start(http_options={"host": cfg.host, "port": cfg.port})
    serve.run(build_app(cfg.model_dump()), name="ray-gan", route_prefix="/", blocking=blocking)
