"""``expert-jobs keys create``: a key shown once, its hash, and a TOML snippet that really works."""

from __future__ import annotations

import re
import tomllib

import pytest

from expert_jobs.config import build_keyring, parse_config
from expert_jobs.service.applications import Application, SystemPrincipal, hash_key
from tests.cli.conftest import Invoke

APP = "myapplication00000000001"
ORG = "myorganization0000000001"


def test_json_key_hash_and_snippet(invoke: Invoke) -> None:
    data = invoke("keys", "create", "--application", APP, "--organization", ORG, "--json").json()
    key = data["key"]
    assert key.startswith("ejk_") and len(key) >= 40
    assert data["keyHash"] == hash_key(key)
    assert data["applicationId"] == APP
    config = parse_config(tomllib.loads(data["toml"]))
    principal = build_keyring(config).authenticate(key)
    assert isinstance(principal, Application)
    assert (principal.id, principal.organization_id) == (APP, ORG)


def test_human_output_shows_the_key_once_and_a_pasteable_snippet(invoke: Invoke) -> None:
    out = invoke("keys", "create", "--application", APP)
    assert out.code == 0
    keys = re.findall(r"ejk_[A-Za-z0-9_-]+", out.stdout)
    assert len(keys) == 1
    key = keys[0]
    assert hash_key(key) in out.stdout
    snippet = out.stdout[out.stdout.index("[applications.") :]
    config = parse_config(tomllib.loads(snippet))
    assert isinstance(build_keyring(config).authenticate(key), Application)
    assert build_keyring(config).authenticate(key + "x") is None


def test_every_key_is_new(invoke: Invoke) -> None:
    first = invoke("keys", "create", "--application", APP, "--json").json()["key"]
    second = invoke("keys", "create", "--application", APP, "--json").json()["key"]
    assert first != second


def test_system_key(invoke: Invoke) -> None:
    data = invoke("keys", "create", "--system", "--json").json()
    assert data["key"].startswith("ejs_")
    assert data["toml"] == f'systemKeyHashes = ["{hash_key(data["key"])}"]'
    config = parse_config(tomllib.loads(data["toml"]))
    assert isinstance(build_keyring(config).authenticate(data["key"]), SystemPrincipal)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give --application ID (an API key) or --system"),
        (("--system", "--application", APP), "give --application ID (an API key) or --system"),
        (("--application", "short"), "--application 'short' is not an id"),
        (("--application", APP, "--organization", "UPPERCASEORGANIZATION000"), "--organization"),
    ],
)
def test_errors(invoke: Invoke, args: tuple[str, ...], message: str) -> None:
    out = invoke("keys", "create", *args)
    assert out.code == 2
    assert message in out.stderr
    assert "ejk_" not in out.stdout
