"""The command line (flask --app app ...), driven with Flask's CLI runner."""

import sqlite3

import pytest

from conftest import AUTH
from conftest import get_json

API = "/api/v3"
COMMANDS = ["init-db", "seed", "reset", "status", "create-app", "create-user"]


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def _invoke(runner, *args, input=None):
    result = runner.invoke(args=list(args), input=input)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(runner, command):
    output = _invoke(runner, command, "--help")
    usage = output.splitlines()[0].split()
    assert usage[0] == "Usage:" and usage[2] == command, usage
    assert "Options:" in output and "--help" in output


def test_init_db_creates_once(runner, app, db_path):
    assert "Seeding devices" in _invoke(runner, "init-db")
    assert "Already initialised" in _invoke(runner, "init-db")
    db = sqlite3.connect(db_path)
    assert db.execute("SELECT count(*) FROM connections").fetchone()[0] == 50
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_seed_replaces_the_world_and_the_api_sees_it(runner, client):
    assert get_json(client, f"{API}/connections/")["meta"]["count"] == 50
    output = _invoke(runner, "seed", "--clients", "7", "--nodes", "3", "--seed", "9")
    assert "seed 9, 3 node(s), 7 client(s) per node" in output
    assert get_json(client, f"{API}/connections/")["meta"]["count"] == 21
    assert len(get_json(client, f"{API}/nodes/")["data"]) == 3


def test_reset_keeps_current_settings_and_undoes_writes(runner, client):
    _invoke(runner, "seed", "--clients", "12", "--nodes", "2")
    first = get_json(client, f"{API}/connections/")["data"][0]["client_id"]
    assert client.delete(f"{API}/connections/{first}", auth=AUTH).get_json() == {"code": 0}
    assert get_json(client, f"{API}/connections/")["meta"]["count"] == 23
    output = _invoke(runner, "reset")
    assert "2 node(s), 12 client(s) per node" in output
    assert get_json(client, f"{API}/connections/")["meta"]["count"] == 24


def test_status_prints_the_counts(runner, client):
    stats = get_json(client, f"{API}/stats/")["data"][0]
    output = _invoke(runner, "status")
    assert f"{stats['connections/count']} connections" in output
    assert f"{stats['subscriptions/count']} subscriptions" in output
    assert f"{stats['routes/count']} routes" in output
    assert "apps      1" in output


def test_create_app_prints_a_secret_that_authenticates(runner, client):
    output = _invoke(runner, "create-app", "ci-app")
    secret = output.split("AppSecret: ")[1].split()[0]
    assert len(secret) >= 40
    assert client.get(f"{API}/brokers/", auth=("ci-app", secret)).status_code == 200
    assert client.get(f"{API}/brokers/", auth=("ci-app", "wrong")).status_code == 401
    listed = get_json(client, f"{API}/apps/")["data"]
    assert {"app_id": "ci-app", "name": "ci-app", "desc": "Application user", "status": True,
            "expired": "undefined"} in listed
    again = runner.invoke(args=["create-app", "ci-app"])
    assert again.exit_code != 0 and "exists already" in again.output


def test_create_user_with_a_prompted_password(runner, client):
    _invoke(runner, "create-user", "carol", "--tags", "operator", input="s3cret\ns3cret\n")
    assert client.get(f"{API}/brokers/", auth=("carol", "s3cret")).status_code == 200
    assert {"username": "carol", "tags": "operator"} in get_json(client, f"{API}/users/")["data"]
    assert client.post(f"{API}/auth", json={"username": "carol", "password": "s3cret"}
                       ).get_json() == {"code": 0}
