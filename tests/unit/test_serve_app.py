"""ray_gan.serve.app, without a running Serve: what the HTTP layer answers to bodies it
rejects (the endpoint itself is tested end to end in tests/integration)."""

import asyncio
import json

import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from ray_gan.config import ServeConfig, VariantsRequest
from ray_gan.serve.api import _invalid_body


def _reject(value) -> dict:
    def no_constants(name):
        raise ValueError(f"{name} is not JSON")

    with pytest.raises(ValidationError) as info:
        VariantsRequest.model_validate({"styles": ["flat"], "edits": {"pc0": value}})
    resp = asyncio.run(_invalid_body(None, RequestValidationError(info.value.errors())))
    assert resp.status_code == 422
    return json.loads(resp.body, parse_constant=no_constants)  # strict JSON: no Infinity or NaN


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), 1e9])
def test_a_rejected_non_finite_or_huge_edit_gets_a_json_422_that_says_why(value):
    detail = _reject(value)["detail"]
    assert any("edits" in [str(p) for p in d["loc"]] for d in detail), detail


def test_a_replica_uses_a_gpu_only_when_it_was_assigned_one():
    from ray_gan.serve.generator import replica_device

    assert replica_device([]) == "cpu"  # num_gpus 0, whatever the node has
    assert replica_device(["0"]) == "cuda"


def test_a_request_is_split_per_style_into_runs_of_at_most_a_batch():
    from ray_gan.serve.api import split

    body = VariantsRequest(styles=["flat", "stripes"], n=10, seed=100, truncation={"stripes": 0.5})
    subs = split(body, [0, 2], max_images=4, output=None, request_id="r")
    assert [(s["style"], s["style_index"], s["seed"], s["count"], s["variant"]) for s in subs] == [
        ("flat", 0, 100, 4, 0), ("flat", 0, 104, 4, 4), ("flat", 0, 108, 2, 8),
        ("stripes", 2, 100, 4, 0), ("stripes", 2, 104, 4, 4), ("stripes", 2, 108, 2, 8)]
    assert [s["truncation"] for s in subs] == [1.0] * 3 + [0.5] * 3


@pytest.mark.parametrize("output, ok", [
    ("s3://b/out/campaign", True), ("s3://b/out", True), ("s3://b/outside", False), ("s3://b/out/../x", False),
    ("s3://other/out/x", False), ("/tmp/x", False)])
def test_output_must_lie_under_an_allowed_prefix(output, ok):
    from ray_gan.serve.api import allowed_output

    assert (allowed_output(output, ["s3://b/out/"]) is not None) == ok


def test_serve_config_names_unique_models_and_a_known_default():
    from ray_gan.config import ServeConfig

    with pytest.raises(ValidationError, match="unique"):
        ServeConfig(models=["a=/m1", "a=/m2"])
    with pytest.raises(ValidationError, match="default_model"):
        ServeConfig(models=["a=/m1"], default_model="b")
    with pytest.raises(ValidationError, match="name a model"):
        ServeConfig()
    with pytest.raises(ValidationError, match="multiple of 16"):
        ServeConfig(model="/m", batching={"render_batch": 24})
    cfg = ServeConfig(model="/m", models=["b=s3://x/y@7"])
    assert [(m.name, m.step) for m in cfg.models] == [("default", None), ("b", 7)]
    assert ServeConfig(**cfg.model_dump(mode="json")) == cfg  # what build_app's args carry


@pytest.mark.parametrize("body", [
    {"styles": ["a"], "mix": {"seed": 10**23}}, {"styles": ["a"], "edits": {"pc0": float("inf")}},
    {"styles": ["a\x00"]}, {"styles": ["a"], "model": "Bad Name"}, {"styles": ["a"], "output": "s3://b/x y"},
    {"styles": ["a"], "format": "gif"}, {"styles": ["a"], "truncation": {f"s{i}": 1.0 for i in range(65)}}])
def test_the_body_model_bounds_every_field(body):
    with pytest.raises(ValidationError):
        VariantsRequest.model_validate(body)


def test_direct_ingress_puts_each_ingress_replica_on_its_own_port_from_port():
    from ray_gan.serve.app import direct_ingress_env

    env = direct_ingress_env(ServeConfig.from_flat(model="m", port=9000, ingress_replicas=2))
    assert env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"
    # Ray allocates ingress HTTP ports from range(MIN, MAX): 9000 and 9001
    assert (int(env["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"]), int(env["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"])) \
        == (9000, 9002)
    assert direct_ingress_env(ServeConfig.from_flat(model="m", ingress="proxy")) == {}
