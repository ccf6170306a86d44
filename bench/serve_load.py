"""Serve load benchmark: closed-loop HTTP clients in another process against ``ray-gan serve``.

    python -m bench.serve_load [--levels 1,4,16,64] [--seconds 10] [--n 4] [--resolution 32]

The server is this process's local Ray with the Serve app of a 32 px ``stylegan`` (the
default preset; untrained weights render as fast as trained ones), one StyleGenerator
replica, deployed three times: with batching (the config's defaults: ``ingress: direct``),
without (``batching: false``), and with batching behind Ray's HTTP proxy
(``ingress: proxy``, 1 and 16 clients). Serve is started afresh for each. For each, a client process (``--client``, asyncio + aiohttp) runs
``c`` closed-loop clients for each concurrency ``c``, each asking for ``--n`` images of
one style per request, and reports requests/s, images/s, p50/p99 latency and errors by
kind. Then a burst of ``--burst`` simultaneous requests shows overload: only 200s and
fast 503s. The baseline, measured in the same run, is a raw ``Renderer.render`` of the
same ``n`` images in this process (the faster of eager and traced): the p50 overhead of the HTTP path is p50 − raw.

Prints a Markdown table for ``docs/benchmarks.md`` and writes the JSON to ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from bench.common import code_state, cpu_flags, cpu_model, markdown_table


def _percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


# ---- the client process ----------------------------------------------------------------


async def _closed_loop(url: str, body: dict, clients: int, seconds: float, warmup: float, token: str | None) -> dict:
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    lat: list[float] = []
    errors: dict[str, int] = {}
    t_start = time.perf_counter()
    t_measure, t_end = t_start + warmup, t_start + warmup + seconds
    images = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal images
        while True:
            t0 = time.perf_counter()
            if t0 >= t_end:
                return
            try:
                async with session.post(url, json=body, headers=headers) as resp:
                    await resp.read()
                    status = resp.status
            except Exception as e:  # noqa: BLE001 - counted by kind
                status = type(e).__name__
            t1 = time.perf_counter()
            if t0 >= t_measure and t1 <= t_end:
                if status == 200:
                    lat.append(t1 - t0)
                    images += body["n"] * len(body["styles"])
                else:
                    errors[str(status)] = errors.get(str(status), 0) + 1

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients), timeout=timeout) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return {"clients": clients, "ok": len(lat), "rps": len(lat) / seconds, "images_per_s": images / seconds,
            "p50_ms": 1000 * _percentile(lat, 0.5), "p99_ms": 1000 * _percentile(lat, 0.99), "errors": errors}


async def _burst(url: str, body: dict, count: int, token: str | None) -> dict:
    """``count`` requests sent at once (one connection each): statuses and how fast 503s came."""
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    out: list[tuple[str, float]] = []

    async def one(session: aiohttp.ClientSession) -> None:
        t0 = time.perf_counter()
        try:
            async with session.post(url, json=body, headers=headers) as resp:
                await resp.read()
                status = str(resp.status)
                if resp.status == 503 and "Retry-After" not in resp.headers:
                    status = "503-without-Retry-After"
        except Exception as e:  # noqa: BLE001
            status = type(e).__name__
        out.append((status, time.perf_counter() - t0))

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        await asyncio.gather(*(one(session) for _ in range(count)))
    statuses: dict[str, int] = {}
    for s, _ in out:
        statuses[s] = statuses.get(s, 0) + 1
    slow_503 = [t for s, t in out if s.startswith("503")]
    ok = [t for s, t in out if s == "200"]
    return {"requests": count, "statuses": statuses, "max_503_s": max(slow_503) if slow_503 else None,
            "p50_200_s": _percentile(ok, 0.5) if ok else None, "max_200_s": max(ok) if ok else None}


def client_main(args: argparse.Namespace) -> None:
    body = json.loads(args.body)
    token = os.environ.get("BENCH_TOKEN")
    if args.burst:
        print(json.dumps(asyncio.run(_burst(args.url, body, args.burst, token))), flush=True)
        return
    for c in [int(x) for x in args.levels.split(",")]:
        print(json.dumps(asyncio.run(_closed_loop(args.url, body, c, args.seconds, args.warmup, token))), flush=True)


# ---- the server process -----------------------------------------------------------------


def _run_client(url: str, body: dict, extra: list[str]) -> list[dict]:
    cmd = [sys.executable, "-m", "bench.serve_load", "--client", "--url", url, "--body", json.dumps(body), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if proc.returncode:
        raise RuntimeError(f"client failed: {proc.stderr[-2000:]}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def _floor_app():
    """A Serve app with the same shape and no work: a FastAPI ingress that calls a second
    deployment and answers a constant. Its latency at 1 client is Ray Serve's own floor
    on this machine (HTTP proxy → ingress → handle call → back)."""
    from fastapi import FastAPI
    from ray import serve

    app = FastAPI()

    @serve.deployment(max_ongoing_requests=64)
    class Echo:
        async def generate(self, body: dict) -> dict:
            return {"images": []}

    @serve.deployment(max_ongoing_requests=64)
    @serve.ingress(app)
    class Floor:
        def __init__(self, echo) -> None:
            self.echo = echo

        @app.post("/v1/variants")
        async def variants(self, body: dict) -> dict:
            return await self.echo.generate.remote(body)

    return Floor.bind(Echo.bind())


def _raw_forward_ms(model: str, n: int, threads: int, traced: bool, reps: int = 50) -> float:
    """Median ms of rendering ``n`` images in this process with ``threads`` torch threads
    (a replica's: Ray gives an actor as many as its num_cpus), eager or traced."""
    import torch

    from ray_gan.generate.render import Renderer

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    r = Renderer(model, "cpu", traced=traced)
    for _ in range(5):
        r.render([0] * n, list(range(n)))
    times = []
    for i in range(reps):
        t0 = time.perf_counter()
        r.render([0] * n, list(range(i, i + n)))
        times.append(time.perf_counter() - t0)
    torch.set_num_threads(before)
    return 1000 * statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--body", help=argparse.SUPPRESS)
    p.add_argument("--burst", type=int, default=0, help="simultaneous requests of the overload burst (default 512)")
    p.add_argument("--levels", default="1,4,16,64")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--n", type=int, default=4, help="images per request")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--arch", default="stylegan")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--modes", default="batched,unbatched,proxy",
                   help="batched and unbatched: ingress direct; proxy: batched behind Ray's HTTP proxy")
    p.add_argument("--json", default="", help="write the results here too")
    args = p.parse_args()
    if args.client:
        client_main(args)
        return

    import torch
    from ray import serve

    from ray_gan import checkpoint as ckpt
    from ray_gan.config import ModelConfig, ServeConfig
    from ray_gan.models import build_generator
    from ray_gan.serve.app import run_server

    work = tempfile.mkdtemp(prefix="serve-load-")
    cfg = ModelConfig.default_for(args.arch, 3, args.resolution)  # what `ray-gan train --arch` makes
    torch.manual_seed(0)
    model = os.path.join(work, "model")
    ckpt.write_generator_model(model, build_generator(cfg).eval(), cfg, ["a", "b", "c"], step=1)
    threads = max(1, int(ServeConfig.from_flat(model=model).replicas.num_cpus))
    raw = {t: _raw_forward_ms(model, args.n, threads, traced=(t == "traced")) for t in ("eager", "traced")}
    raw_ms = min(raw.values())  # the faster of the two is the baseline
    body = {"styles": ["a"], "n": args.n, "seed": 1}
    url = f"http://127.0.0.1:{args.port}/v1/variants"
    results: dict = {"machine": cpu_model(), "cpu_flags": cpu_flags(), "code": code_state(), "cores": os.cpu_count(),
                     "model": f"{args.arch} {args.resolution}px", "images_per_request": args.n,
                     "raw_forward_ms": raw_ms, "raw_forward_ms_by_kind": raw, "modes": {}}
    from ray_gan.runtime import init_ray
    from ray_gan.serve.app import direct_ingress_env

    init_ray()
    # Ray Serve's floor, in the same (direct) ingress mode: no work behind the same shape
    floor_cfg = ServeConfig.from_flat(model=model, port=args.port)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port + 100},
                controller_options={"runtime_env": {"env_vars": direct_ingress_env(floor_cfg)}})
    serve.run(_floor_app(), name="floor", route_prefix="/")
    results["serve_floor"] = _run_client(url, body, ["--levels", "1", "--seconds", str(args.seconds),
                                                     "--warmup", str(args.warmup)])[0]
    serve.shutdown()  # Serve keeps the settings it starts with: each mode starts it afresh
    for mode in args.modes.split(","):
        serve_cfg = ServeConfig.from_flat(model=model, port=args.port, batching=(mode != "unbatched"),
                                          ingress="proxy" if mode == "proxy" else "direct")
        run_server(serve_cfg, blocking=False)
        levels = args.levels if mode != "proxy" else "1,16"
        rows = _run_client(url, body, ["--levels", levels, "--seconds", str(args.seconds),
                                       "--warmup", str(args.warmup)])
        entry = {"levels": rows}
        if mode == "batched":
            entry["burst"] = _run_client(url, body, ["--burst", str(args.burst or 512)])[0]
        results["modes"][mode] = entry
        serve.shutdown()
        print(json.dumps({mode: entry}), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    print(report(results))


def report(results: dict) -> str:
    head = ["mode", "clients", "requests/s", "images/s", "p50 ms", "p99 ms", "errors"]
    rows = []
    for mode, entry in results["modes"].items():
        for r in entry["levels"]:
            rows.append([mode, str(r["clients"]), f"{r['rps']:.1f}", f"{r['images_per_s']:.0f}", f"{r['p50_ms']:.0f}",
                         f"{r['p99_ms']:.0f}", ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "0"])
    text = [markdown_table(head, rows), ""]
    by_kind = results.get("raw_forward_ms_by_kind", {})
    text.append(f"Raw forward of {results['images_per_request']} images (baseline, same run, the faster of "
                f"eager and traced): {results['raw_forward_ms']:.1f} ms "
                f"({', '.join(f'{k} {v:.1f}' for k, v in by_kind.items())}).")
    b = results["modes"].get("batched", {})
    lv = {r["clients"]: r for r in b.get("levels", [])}
    if lv:
        peak = max(r["rps"] for r in lv.values())
        top = lv[max(lv)]
        text.append(f"Batched: peak {peak:.1f} requests/s; at {top['clients']} clients {top['rps']:.1f} "
                    f"({100 * top['rps'] / peak:.0f} % of peak).")
        if 1 in lv:
            text.append(f"p50 overhead at 1 client: {lv[1]['p50_ms'] - results['raw_forward_ms']:.1f} ms "
                        f"over the raw forward.")
        if "serve_floor" in results:
            text.append(f"Ray Serve's floor (same app shape, no work, 1 client): p50 "
                        f"{results['serve_floor']['p50_ms']:.1f} ms, {results['serve_floor']['rps']:.0f} requests/s.")
        u = {r["clients"]: r for r in results["modes"].get("unbatched", {}).get("levels", [])}
        if 16 in lv and 16 in u and u[16]["rps"]:
            text.append(f"Batched ÷ unbatched at 16 clients: {lv[16]['rps'] / u[16]['rps']:.2f}×.")
    if "burst" in b:
        text.append(f"Burst of {b['burst']['requests']} simultaneous requests: {b['burst']['statuses']}; slowest 503 "
                    f"{b['burst']['max_503_s']} s; slowest 200 {b['burst']['max_200_s']} s.")
    text.append(f"Machine: {results['machine']} ({results['cores']} cores; {results['cpu_flags']}); "
                f"code {results['code']}.")
    return "\n".join(text)


if __name__ == "__main__":
    main()
