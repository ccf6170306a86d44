"""``VariantsAPI``: the HTTP ingress (FastAPI on Ray Serve, CPU only).

A request is checked (body model, then the named model's styles and controls, the image
limit, an allowed output prefix), admitted if its images fit this replica's
``max_pending_images`` (otherwise 503 with Retry-After at once), split into sub-requests
— one per style and run of at most ``max_batch_size`` consecutive seeds — and fanned out
over the model's ``StyleGenerator`` replicas with parallel handle calls. A queue that is
full (Serve's ``max_queued_requests``) or a request past ``request_timeout_s`` gets 503
with Retry-After; a failing sub-request fails only its own request.

Endpoints: ``POST /v1/variants``, ``GET /v1/models``, ``GET /v1/styles``, ``GET /healthz``
(no token needed). Bad bodies get 422 with a message, never a 5xx.
"""

# No `from __future__ import annotations`: FastAPI reads the real annotations.
import asyncio
import logging
import math
import time
import uuid
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from ray import serve
from ray.serve.handle import DeploymentHandle

from ray_gan import storage
from ray_gan.config import MODEL_NAME_RE, ServeConfig, VariantsRequest
from ray_gan.generate.controls import ControlError, check_controls
from ray_gan.serve.auth import TokenStore
from ray_gan.serve.metrics import metrics
from ray_gan.serve.schema import ErrorResponse, Health, ModelList, StylesResponse, VariantsResponse

log = logging.getLogger("ray.serve")

ERRORS = {401: {"model": ErrorResponse, "description": "No valid bearer token."},
          422: {"model": ErrorResponse, "description": "Invalid body: what is wrong."},
          503: {"model": ErrorResponse, "description": "Overloaded or timed out: retry after Retry-After seconds."}}

api = FastAPI(title="ray_gan", version="1",
              description="Style-diverse GAN image variants: POST /v1/variants renders styles × seeds of a served model.")


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


class CountRequests:
    """Pure ASGI middleware: every answer counted and timed by route and status — 401, 422
    and 503 included (Starlette's BaseHTTPMiddleware would cost more per request)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            try:
                metrics().observe(scope.get("path", ""), status, time.perf_counter() - t0)
            except Exception:  # noqa: BLE001 - metrics never fail a request
                log.debug("metrics not recorded", exc_info=True)


api.add_middleware(CountRequests)


_bearer = HTTPBearer(auto_error=False, description="Bearer token, when the server has tokens configured.")


def _replica_tokens() -> TokenStore | None:
    """This replica's tokens: held by its VariantsAPI instance (not a module global: Serve
    may ship the deployment class by value, with a copy of this module's globals)."""
    try:
        return getattr(serve.get_replica_context().servable_object, "tokens", None)
    except Exception:  # noqa: BLE001 - not inside a Serve replica
        return None


async def authorize(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    tokens = _replica_tokens()
    if tokens is None or not tokens.enabled:
        return
    header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
    if not tokens.check(header):
        raise HTTPException(401, detail="a valid bearer token is required (Authorization: Bearer TOKEN)",
                            headers={"WWW-Authenticate": "Bearer"})


def json_safe_rows(resp: dict) -> dict:
    """Manifest rows' timestamps as ISO text."""
    resp["manifest"] = [{**r, "created": r["created"].isoformat()} for r in resp["manifest"]]
    return resp


class Unavailable(HTTPException):
    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(503, detail=detail, headers={"Retry-After": str(retry_after_s)})


def allowed_output(output: str, prefixes: list[str]) -> str | None:
    """``output`` normalised if it lies under one of ``prefixes`` (whole path segments, no
    ``..``); otherwise None."""
    if ".." in output.replace("\\", "/").split("/"):
        return None
    try:
        out = storage.normalize(output)
    except Exception:  # noqa: BLE001 - an unparsable URI is not allowed
        return None
    for p in prefixes:
        root = storage.normalize(p)
        if out == root or out.startswith(root.rstrip("/") + "/"):
            return out
    return None


def split(body: VariantsRequest, style_indices: list[int], max_images: int, output: str | None,
          request_id: str) -> list[dict]:
    """Sub-requests: per style, runs of at most ``max_images`` consecutive seeds."""
    subs = []
    mix = body.mix.model_dump() if body.mix else None
    for style, s_idx in zip(body.styles, style_indices):
        for start in range(0, body.n, max_images):
            subs.append({"style": style, "style_index": s_idx, "seed": body.seed + start, "variant": start,
                         "count": min(max_images, body.n - start), "truncation": body.truncation_for(style),
                         "mix": mix, "edits": dict(body.edits), "format": body.format, "output": output,
                         "request_id": request_id})
    return subs


@serve.deployment(name="VariantsAPI")
@serve.ingress(api)
class VariantsAPI:
    def __init__(self, config: dict, generators: dict[str, DeploymentHandle]) -> None:
        self.cfg = ServeConfig(**config)
        self.generators = generators
        self.pinned = {m.name: m for m in self.cfg.models}
        self._info: dict[str, dict] = {}
        self.pending_images = 0
        self.tokens = TokenStore(self.cfg.auth)

    async def _model_info(self, name: str) -> dict:
        if name not in self._info:  # the model is pinned: every replica answers the same
            self._info[name] = await self.generators[name].info.remote()
        return self._info[name]

    def _model_name(self, name: str | None) -> str:
        name = name or self.cfg.default
        if name not in self.generators:
            raise HTTPException(422, detail=f"unknown model {name!r}; served: {sorted(self.generators)}")
        return name

    @api.get("/healthz", response_model=Health)
    async def healthz(self) -> dict:
        return {"status": "ok", "models": [self._ref(n) for n in self.pinned]}

    def _ref(self, name: str) -> dict:
        m = self.pinned[name]
        return {"name": name, "uri": m.uri, "step": m.step, "weights_sha256": m.weights_sha256}

    @api.get("/v1/models", response_model=ModelList, dependencies=[Depends(authorize)], responses=ERRORS)
    async def models(self) -> dict:
        out = []
        for name in self.pinned:
            i = await self._model_info(name)
            c = i["controls"]
            out.append({**self._ref(name), "default": name == self.cfg.default, "styles": i["styles"],
                        "resolution": i["resolution"], "architecture": i["architecture"],
                        "style_mixing_layers": c.num_ws, "edit_directions": list(c.directions),
                        "device": i["device"]})
        return {"models": out}

    @api.get("/v1/styles", response_model=StylesResponse, dependencies=[Depends(authorize)], responses=ERRORS)
    async def styles(self, model: str | None = Query(None, pattern=MODEL_NAME_RE)) -> dict:
        name = self._model_name(model)
        i = await self._model_info(name)
        return {"model": name, "styles": i["styles"], "step": i["step"], "resolution": i["resolution"],
                "weights_sha256": i["weights_sha256"]}

    @api.post("/v1/variants", response_model=VariantsResponse, dependencies=[Depends(authorize)],
              responses=ERRORS)
    async def variants(self, body: VariantsRequest) -> dict:
        lim = self.cfg.limits
        name = self._model_name(body.model)
        info = await self._model_info(name)
        unknown = [s for s in body.styles if s not in info["styles"]]
        if unknown:
            raise HTTPException(422, detail=f"unknown style(s) {unknown}; available: {info['styles']}")
        count = len(body.styles) * body.n
        if count > lim.max_images_per_request:
            raise HTTPException(422, detail=f"{len(body.styles)} styles × n={body.n} exceeds "
                                            f"{lim.max_images_per_request} images per request")
        try:
            check_controls(info["controls"], body.truncation, body.mix, body.edits)
        except ControlError as e:
            raise HTTPException(422, detail=str(e)) from None
        output = None
        if body.output is not None:
            if not self.cfg.output_prefixes:
                raise HTTPException(422, detail="this server writes no images to storage (no output_prefixes): "
                                                "leave out \"output\"")
            output = allowed_output(body.output, self.cfg.output_prefixes)
            if output is None:
                raise HTTPException(422, detail=f"output must lie under one of {self.cfg.output_prefixes}")
        if self.pending_images + count > lim.max_pending_images:
            raise Unavailable(f"overloaded: {self.pending_images} images pending; retry later", lim.retry_after_s)
        request_id = uuid.uuid4().hex
        target = storage.join(output, request_id) if output else None
        subs = split(body, [info["styles"].index(s) for s in body.styles], self.cfg.batching.max_batch_size,
                     target, request_id)
        self.pending_images += count
        self._gauge()
        try:
            parts = await self._fan_out(name, subs)
        finally:
            self.pending_images -= count
            self._gauge()
        mix = body.mix.model_dump() if body.mix else None
        images = [{**img, "mix": mix, "edits": dict(body.edits)} for p in parts for img in p["images"]]
        resp = {"request_id": request_id, "model": self._ref(name), "device": info["device"], "images": images,
                "manifest": None, "manifest_uri": None}
        if target:
            from ray_gan.manifest import write_part

            rows = [r for p in parts for r in p["rows"]]
            resp["manifest_uri"] = await asyncio.to_thread(write_part, target, "part-00000.parquet", rows)
            resp["manifest"] = rows
        try:
            for s in body.styles:
                metrics().images.inc(body.n, tags={"model": name, "style": s})
        except Exception:  # noqa: BLE001
            log.debug("metrics not recorded", exc_info=True)
        # Built here, not by FastAPI from response_model (which documents it): the parts
        # come from our own code, and validating every image again costs per request.
        return JSONResponse(resp if not target else json_safe_rows(resp))

    async def _fan_out(self, name: str, subs: list[dict]) -> list[dict]:
        from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

        lim = self.cfg.limits
        handle = self.generators[name]
        responses = [handle.generate.remote(sub) for sub in subs]
        try:
            return await asyncio.wait_for(asyncio.gather(*responses), lim.request_timeout_s)
        except (BackPressureError, DeploymentUnavailableError):
            for r in responses:
                r.cancel()
            raise Unavailable("the model's replicas are at capacity; retry later", lim.retry_after_s) from None
        except asyncio.TimeoutError:
            for r in responses:
                r.cancel()
            raise Unavailable(f"not rendered within {lim.request_timeout_s:g} s; retry later",
                              lim.retry_after_s) from None
        except Exception:
            for r in responses:  # this request has failed: its other sub-requests need not run
                r.cancel()
            raise

    def _gauge(self) -> None:
        try:
            metrics().pending.set(self.pending_images)
        except Exception:  # noqa: BLE001
            log.debug("metrics not recorded", exc_info=True)
