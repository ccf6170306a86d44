"""ray_gan.serve.auth: bearer tokens from an env var and a rotating file; no unprotected
non-loopback endpoint by accident."""

import os

import pytest

from ray_gan.config import ServeAuth
from ray_gan.serve.auth import AuthConfigError, TokenStore, check_exposure


def test_no_token_configured_lets_every_request_pass(monkeypatch):
    monkeypatch.delenv("RAY_GAN_API_TOKENS", raising=False)
    store = TokenStore(ServeAuth())
    assert not store.enabled and store.check(None)


def test_tokens_from_the_env_var_need_an_exact_bearer_token(monkeypatch):
    monkeypatch.setenv("RAY_GAN_API_TOKENS", "alpha, beta\n")
    store = TokenStore(ServeAuth())
    assert store.enabled
    assert store.check("Bearer alpha") and store.check("bearer beta")
    for bad in (None, "", "Bearer", "Bearer alph", "Basic alpha", "alpha", "Bearer gamma"):
        assert not store.check(bad), bad


def test_the_token_file_is_read_again_when_it_changes(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_GAN_API_TOKENS", raising=False)
    path = tmp_path / "tokens"
    path.write_text("# rotated weekly\nold-token\n")
    store = TokenStore(ServeAuth(token_file=str(path)), recheck_s=0.0)
    assert store.check("Bearer old-token") and not store.check("Bearer new-token")
    path.write_text("new-token\n")
    os.utime(path, (1, 1))  # a new mtime, as a re-mounted Secret has
    assert store.check("Bearer new-token") and not store.check("Bearer old-token")


def test_a_missing_token_file_is_an_error_at_start(tmp_path):
    with pytest.raises(AuthConfigError, match="token_file"):
        TokenStore(ServeAuth(token_file=str(tmp_path / "nope")))


def test_a_non_loopback_host_without_tokens_is_refused_unless_insecure(monkeypatch, tmp_path):
    monkeypatch.delenv("RAY_GAN_API_TOKENS", raising=False)
    check_exposure("127.0.0.1", ServeAuth())
    check_exposure("localhost", ServeAuth())
    with pytest.raises(AuthConfigError, match="--insecure"):
        check_exposure("0.0.0.0", ServeAuth())
    check_exposure("0.0.0.0", ServeAuth(insecure=True))
    (tmp_path / "t").write_text("tok\n")
    check_exposure("0.0.0.0", ServeAuth(token_file=str(tmp_path / "t")))
    monkeypatch.setenv("RAY_GAN_API_TOKENS", "tok")
    check_exposure("10.0.0.5", ServeAuth())
