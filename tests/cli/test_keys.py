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
    assert data["toml"] == f'[[systemKeys]]\nkeyHash = "{hash_key(data["key"])}"'
    config = parse_config(tomllib.loads(data["toml"]))
    assert isinstance(build_keyring(config).authenticate(data["key"]), SystemPrincipal)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--system", "--application", APP), "--system makes a system key: --application and --organization"),
        (
            ("--system", "--organization", ORG),
            "--system makes a system key: --application and --organization",
        ),
        (
            ("--application", "myapp"),
            "--application 'myapp' is not an id: ids are 24 characters of [a-z0-9], "
            "e.g. myapplication00000000001; leave --application out to make a new application id",
        ),
        (("--application", APP, "--organization", "UPPERCASEORGANIZATION000"), "--organization"),
    ],
)
def test_errors(invoke: Invoke, args: tuple[str, ...], message: str) -> None:
    out = invoke("keys", "create", *args)
    assert out.code == 2
    assert message in out.stderr
    assert "ejk_" not in out.stdout


def test_without_an_application_a_new_application_id_is_made_and_printed(invoke: Invoke) -> None:
    out = invoke("keys", "create")
    assert out.code == 0, out.stderr
    made = re.search(r"New application id: ([a-z0-9]{24}) ", out.stdout)
    assert made is not None, out.stdout
    app_id = made.group(1)
    key = re.findall(r"ejk_[A-Za-z0-9_-]+", out.stdout)[0]
    config = parse_config(tomllib.loads(out.stdout[out.stdout.index("[applications.") :]))
    principal = build_keyring(config).authenticate(key)
    assert isinstance(principal, Application)
    assert principal.id == app_id
    data = invoke("keys", "create", "--json").json()
    assert data["newApplication"] is True
    assert re.fullmatch(r"[a-z0-9]{24}", data["applicationId"])
    assert data["applicationId"] != app_id
    assert invoke("keys", "create", "--application", APP, "--json").json()["newApplication"] is False


def test_the_help_says_what_an_application_id_is(invoke: Invoke) -> None:
    out = invoke("keys", "create", "--help")
    text = " ".join(out.stdout.replace("│", " ").split())
    assert "24 characters of [a-z0-9]" in text
    assert "a new application id" in text


EXISTING = """\
store = "sqlite:///jobs.db"
maxSteps = 10

[provider]
providerName = "test"

[experts."echo"]
instruction = "Echo."
"""


def _system_key(invoke: Invoke) -> tuple[str, str]:
    """A new system key and the snippet ``keys create --system`` prints for it."""
    out = invoke("keys", "create", "--system")
    assert out.code == 0, out.stderr
    assert "Paste this at the end of the configuration file" in out.stdout
    key = re.findall(r"ejs_[A-Za-z0-9_-]+", out.stdout)[0]
    snippet = out.stdout[out.stdout.rindex("\n[[systemKeys]]\n") + 1 :]  # the last lines
    assert snippet.rstrip("\n") == f'[[systemKeys]]\nkeyHash = "{hash_key(key)}"'
    return key, snippet


def test_the_system_snippet_appended_to_the_end_of_a_file_with_tables_works(invoke: Invoke) -> None:
    key, snippet = _system_key(invoke)
    pasted = EXISTING + "\n" + snippet
    config = parse_config(tomllib.loads(pasted))
    assert (config.max_steps, list(config.experts)) == (10, ["echo"])
    assert config.provider.provider_name == "test"
    ring = build_keyring(config)
    assert isinstance(ring.authenticate(key), SystemPrincipal)
    assert ring.authenticate(key + "x") is None


def test_system_snippets_add_up_with_each_other_and_with_system_key_hashes(invoke: Invoke) -> None:
    old = "ejs_an-older-system-key-kept-in-a-list-of-hashes"
    first, first_snippet = _system_key(invoke)
    second, second_snippet = _system_key(invoke)
    app_out = invoke("keys", "create", "--application", APP)
    app_key = re.findall(r"ejk_[A-Za-z0-9_-]+", app_out.stdout)[0]
    app_snippet = app_out.stdout[app_out.stdout.index("[applications.") :]
    top = f'systemKeyHashes = ["{hash_key(old)}"]\n'
    # Pasted one after the other at the end, in any order with an application's table.
    pasted = top + EXISTING + "\n" + first_snippet + "\n" + app_snippet + "\n" + second_snippet
    config = parse_config(tomllib.loads(pasted))
    ring = build_keyring(config)
    for key in (old, first, second):
        assert isinstance(ring.authenticate(key), SystemPrincipal), key
    assert isinstance(ring.authenticate(app_key), Application)
    assert config.every_system_key_hash == (hash_key(old), hash_key(first), hash_key(second))


def test_the_application_snippet_appended_to_an_existing_file_works(invoke: Invoke) -> None:
    out = invoke("keys", "create", "--application", APP)
    key = re.findall(r"ejk_[A-Za-z0-9_-]+", out.stdout)[0]
    assert "Paste this at the end of the configuration file" in out.stdout
    snippet = out.stdout[out.stdout.index("[applications.") :]
    config = parse_config(tomllib.loads(EXISTING + "\n" + snippet))
    assert list(config.experts) == ["echo"]
    principal = build_keyring(config).authenticate(key)
    assert isinstance(principal, Application) and principal.id == APP
