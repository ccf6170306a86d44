"""``StyleGenerator``: one Serve deployment per served model (the GPU one in production).

A replica holds the EMA generator of its model's *pinned* checkpoint (step and weights
sha256 fixed when the app was deployed; a replica whose storage no longer holds those
weights fails to start). It receives *sub-requests* — one style's run of consecutive
seeds, at most ``max_batch_size`` images — from the ingress, and:

* merges the sub-requests of all callers that wait while a forward pass runs into the
  next batch, by **image count** (:class:`~ray_gan.serve.batcher.ImageBatcher`),
  rendered in micro-batches of up to ``render_batch`` rows on one forward thread, off
  the event loop;
* encodes each sub-request's images on a thread pool (``encode_threads``) after the
  batch's forward pass, so encoding never holds up the next batch;
* in output mode, writes the images to storage and returns their manifest rows.

One (mixing, edits) group of a batch that fails fails only the sub-requests of that group.
An image's bytes do not depend on its batch (:mod:`ray_gan.generate.render`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ray import serve

from ray_gan.config import MixSpec, ServeBatching, ServeModel


def replica_device(gpu_ids: list) -> str:
    """A replica renders on a GPU only when Ray assigned it one (``num_gpus`` > 0): a replica
    given none stays on the CPU even on a node that has GPUs, which other work holds."""
    return "cuda" if gpu_ids else "cpu"


def group_key(sub: dict) -> str:
    """Sub-requests with the same mixing and edits render in one call."""
    return json.dumps([sub.get("mix"), sub.get("edits") or {}], sort_keys=True)


@serve.deployment(name="StyleGenerator")
class StyleGenerator:
    def __init__(self, model: dict, batching: dict) -> None:
        import ray

        from ray_gan.generate.controls import model_controls
        from ray_gan.generate.render import Renderer
        from ray_gan.serve.batcher import ImageBatcher

        self.model = ServeModel(**model)
        b = ServeBatching(**batching)
        self.renderer = Renderer(self.model.uri, replica_device(ray.get_gpu_ids()), step=self.model.step,
                                 weights_sha256=self.model.weights_sha256, render_batch=b.render_batch,
                                 traced=True)
        self.controls = model_controls(self.renderer.info, self.renderer.G, renderer=self.renderer)
        self._encode = ThreadPoolExecutor(b.encode_threads, thread_name_prefix="encode")

        self.batcher = ImageBatcher(self._render, ThreadPoolExecutor(1, thread_name_prefix="forward"),
                                    max_images=b.max_batch_size, wait_s=b.batch_wait_timeout_s,
                                    on_batch=self._record_batch, max_items=None if b.batching else 1)

    def _record_batch(self, images: int, queued: int) -> None:
        from ray_gan.serve.metrics import metrics

        try:
            metrics().record_batch(self.model.name, images, queued)
        except Exception:  # noqa: BLE001 - metrics never fail a request
            pass

    def info(self) -> dict[str, Any]:
        i = self.renderer.info
        return {"name": self.model.name, "uri": i.uri, "step": i.step, "weights_sha256": i.weights_sha256,
                "styles": list(i.styles), "resolution": i.config.resolution, "architecture": i.config.arch,
                "device": self.renderer.fingerprint, "controls": self.controls}

    async def generate(self, sub: dict) -> dict:
        """One sub-request → its images (encoded; written to storage in output mode)."""
        images = await self.batcher.submit(sub, int(sub["count"]))
        if isinstance(images, Exception):
            raise images
        loop = asyncio.get_running_loop()
        n, k = len(images), self._encode._max_workers
        step = max(1, -(-n // k))
        parts = await asyncio.gather(*(loop.run_in_executor(self._encode, self._finish, sub, i, images[i : i + step])
                                       for i in range(0, n, step)))
        return {"images": [img for p in parts for img in p[0]], "rows": [r for p in parts for r in p[1]]}

    def _render(self, subs: list[dict]) -> list:
        """Each sub-request's uint8 images, or the exception that its group raised."""
        results: list = [None] * len(subs)
        groups: dict[str, list[int]] = {}
        for k, sub in enumerate(subs):
            groups.setdefault(group_key(sub), []).append(k)
        for key, members in groups.items():
            styles, seeds, truncs = [], [], []
            for k in members:
                s = subs[k]
                styles += [s["style_index"]] * s["count"]
                seeds += range(s["seed"], s["seed"] + s["count"])
                truncs += [s["truncation"]] * s["count"]
            mix, edits = subs[members[0]].get("mix"), subs[members[0]].get("edits") or None
            try:
                images = self.renderer.render(styles, seeds, truncs, mix=MixSpec(**mix) if mix else None, edits=edits)
            except Exception as e:  # noqa: BLE001 - returned to the group's callers only
                for k in members:
                    results[k] = e
                continue
            at = 0
            for k in members:
                results[k] = images[at : at + subs[k]["count"]]
                at += subs[k]["count"]
        return results
    def _finish(self, sub: dict, first: int, images) -> tuple[list[dict], list[dict]]:
        """Encode images ``first``… of ``sub``; in output mode write them and make their rows."""
        from ray_gan import storage
        from ray_gan.images import encode
        from ray_gan.manifest import image_uri, manifest_row

        fmt, out, rows = sub["format"], [], []
        info = self.renderer.info
        mix = MixSpec(**sub["mix"]) if sub.get("mix") else None
        for j, img in enumerate(images):
            seed = sub["seed"] + first + j
            data = encode(img, fmt)
            item = {"style": sub["style"], "seed": seed, "truncation": sub["truncation"],
                    "width": int(img.shape[1]), "height": int(img.shape[0]), "format": fmt,
                    "sha256": hashlib.sha256(data).hexdigest(), "image_base64": None, "uri": None}
            if sub.get("output"):
                iid = f"{sub['style']}-{seed}"
                uri = image_uri(sub["output"], sub["style"], iid, fmt)
                storage.write_bytes(uri, data)
                item["uri"] = uri
                rows.append(manifest_row(
                    job_id=sub["request_id"], image_id=iid, style=sub["style"], style_index=sub["style_index"],
                    variant=sub["variant"] + first + j, seed=seed, truncation=sub["truncation"],
                    mix=mix, edits=sub.get("edits"),
                    model_uri=info.uri, weights_sha256=info.weights_sha256, uri=uri, data=data, fmt=fmt,
                    resolution=info.config.resolution, device=self.renderer.device.type))
            else:
                item["image_base64"] = base64.b64encode(data).decode()
            out.append(item)
        return out, rows
