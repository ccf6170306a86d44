"""ray_gan.serve.app, without a running Serve: what the HTTP layer answers to bodies it
rejects (the endpoint itself is tested end to end in tests/integration)."""

import asyncio
import json

import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from ray_gan.config import VariantsRequest
from ray_gan.serve.app import _invalid_body


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
    from ray_gan.serve.app import replica_device

    assert replica_device([]) == "cpu"  # num_gpus 0, whatever the node has
    assert replica_device(["0"]) == "cuda"
