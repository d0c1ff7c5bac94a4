"""Commands of the stand-in, beside app.py's `init-db`: seed, reset, status, create-app and
create-user (app.py adds them to `flask --app app`), and the `emqx-standin` command
(`main`), which has them all and `serve`.
"""

import os
import sqlite3
import sys

import click
from flask import current_app
from flask.cli import AppGroup
from flask.cli import ScriptInfo

import seed as seeding
import standin
from app import app
from app import EMQX_VERSION
from app import generate_secret
from app import seed_with_bar
from app import VERSION
from database import ensure_database
from database import hash_password
from database import insert_app
from database import insert_user
from database import open_db
from database import transaction

commands = AppGroup("standin")


def _build(path, seed, nodes, clients):
    """A builder for seed_with_bar: a new file is created, an existing one rebuilt."""
    fresh = not (os.path.exists(path) and os.path.getsize(path))

    def build(progress):
        if fresh:
            ensure_database(path, current_app.config, seed, nodes, clients, progress=progress)
            return
        db = open_db(path)
        try:
            standin.rebuild(db, seed, nodes, clients, progress=progress)
        finally:
            db.close()

    return build


def _database_settings(path):
    ensure_database(path, current_app.config)
    db = open_db(path)
    try:
        return seeding.world_settings(db)
    finally:
        db.close()


@commands.command("seed")
@click.option("--clients", type=click.IntRange(0), default=None,
              help="Connected clients per node (default: STANDIN_CLIENTS).")
@click.option("--nodes", type=click.IntRange(1, 64), default=None,
              help="Node count (default: STANDIN_NODES).")
@click.option("--seed", type=int, default=None, help="Random seed (default: STANDIN_SEED).")
def seed_command(clients, nodes, seed):
    """Build the database with these settings, replacing whatever it held."""
    config = current_app.config
    path = config["DATABASE"]
    seed = config["SEED"] if seed is None else seed
    nodes = config["NODES"] if nodes is None else nodes
    clients = config["CLIENTS"] if clients is None else clients
    seed_with_bar(path, seed, nodes, clients, _build(path, seed, nodes, clients))


@commands.command("reset")
@click.option("--seed", type=int, default=None, help="Random seed (default: current).")
@click.option("--nodes", type=click.IntRange(1, 64), default=None,
              help="Node count (default: current).")
@click.option("--clients", type=click.IntRange(0), default=None,
              help="Clients per node (default: current).")
def reset_command(seed, nodes, clients):
    """Rebuild the synthetic cluster from scratch, keeping the current settings by default."""
    path = current_app.config["DATABASE"]
    current = _database_settings(path)
    seed = current["seed"] if seed is None else seed
    nodes = current["nodes"] if nodes is None else nodes
    clients = current["clients"] if clients is None else clients
    seed_with_bar(path, seed, nodes, clients, _build(path, seed, nodes, clients))


@commands.command("status")
def status_command():
    """Print the database's settings and what it holds."""
    path = current_app.config["DATABASE"]
    current = _database_settings(path)
    db = open_db(path)
    try:
        click.echo(f"database  {path}")
        click.echo(f"settings  seed {current['seed']}, {current['nodes']} node(s),"
                   f" {current['clients']} client(s) per node")
        for row in db.execute("SELECT n.name, n.node_status, s.* FROM nodes n"
                              " JOIN node_stats s ON s.node = n.name ORDER BY n.position"):
            click.echo(f"node      {row['name']} {row['node_status']}:"
                       f" {row['connections_count']} connections,"
                       f" {row['sessions_count']} sessions,"
                       f" {row['subscriptions_count']} subscriptions")
        cluster = db.execute("SELECT * FROM cluster_stats").fetchone()
        click.echo(f"cluster   {cluster['routes_count']} routes,"
                   f" {cluster['retained_count']} retained messages")
        for table in ("banned", "apps", "users", "alarms"):
            count = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            click.echo(f"{table:<9} {count}")
    finally:
        db.close()


def _insert(path, what, insert):
    """Run `insert(db)` in a write transaction on the (created if need be) database."""
    ensure_database(path, current_app.config)
    db = open_db(path)
    try:
        with transaction(db):
            insert(db)
    except sqlite3.IntegrityError:
        raise click.ClickException(f"{what} exists already") from None
    finally:
        db.close()


@commands.command("create-app")
@click.argument("app_id")
@click.option("--secret", default=None, help="AppSecret (default: generated like EMQ X's).")
@click.option("--name", default=None, help="Application name.")
@click.option("--desc", default="Application user", show_default=True, help="Description.")
def create_app_command(app_id, secret, name, desc):
    """Add an application (AppID/AppSecret for Basic auth) and print its secret."""
    secret = secret or generate_secret()
    _insert(current_app.config["DATABASE"], f"application {app_id!r}",
            lambda db: insert_app(db, app_id, secret, name or app_id, desc, True, None))
    click.echo(f"AppID: {app_id}\nAppSecret: {secret}")


@commands.command("create-user")
@click.argument("username")
@click.password_option(help="Password (prompted when omitted).")
@click.option("--tags", default="viewer", show_default=True, help="Tags shown by /users/.")
def create_user_command(username, password, tags):
    """Add a dashboard user (also accepted for Basic auth)."""
    hashed = hash_password(password)
    _insert(current_app.config["DATABASE"], f"user {username!r}",
            lambda db: insert_user(db, username, hashed, tags))
    click.echo(f"User {username} created")


# ---------------------------------------------------------------------------
# emqx-standin: the command a package installs
# ---------------------------------------------------------------------------

HERE = os.path.dirname(os.path.abspath(__file__))


@click.command("serve")
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1; 0.0.0.0 to"
              " serve other machines). Env: STANDIN_HOST.")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port (default 8080). Env: PORT.")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Worker processes (default two per CPU, at most 8). Env: WEB_CONCURRENCY.")
@click.option("--threads", type=click.IntRange(1, 256), default=None,
              help="Threads per worker (default 8). Env: STANDIN_THREADS.")
@click.option("--db", type=click.Path(dir_okay=False), default=None,
              help="SQLite file (default ./standin.db). Env: STANDIN_DB.")
@click.option("--seed", type=int, default=None, help="Seed of a new cluster. Env: STANDIN_SEED.")
@click.option("--nodes", type=click.IntRange(1, 64), default=None,
              help="Nodes of a new cluster. Env: STANDIN_NODES.")
@click.option("--clients", type=click.IntRange(0), default=None,
              help="Clients per node of a new cluster. Env: STANDIN_CLIENTS.")
@click.option("--strict", is_flag=True, default=None,
              help="Answer exactly as EMQ X 3.0.1, on its two listeners (PORT for the"
              " management API, DASHBOARD_PORT for the dashboard's). Env: STANDIN_STRICT=1.")
@click.option("--dashboard-port", type=click.IntRange(1, 65535), default=None,
              help="Strict mode's dashboard listener (default 18083). Env: DASHBOARD_PORT.")
# The MQTT listener (mqtt.py): off unless a port is given.
@click.option("--mqtt", "mqtt_port", type=click.IntRange(1, 65535), default=None,
              help="Also accept real MQTT 3.1.1 clients on this port (off by default)."
              " Env: STANDIN_MQTT_PORT.")
@click.option("--mqtt-host", default=None, help="Address the MQTT listener binds (default:"
              " the --host address). Env: STANDIN_MQTT_HOST.")
def serve(host, port, workers, threads, db, seed, nodes, clients, strict, dashboard_port,
          mqtt_port, mqtt_host):
    """Serve the API with gunicorn and the project's gunicorn.conf.py (Ctrl-C stops it)."""
    given = {"STANDIN_HOST": host, "PORT": port, "WEB_CONCURRENCY": workers,
             "STANDIN_THREADS": threads, "STANDIN_DB": db and os.path.abspath(db),
             "STANDIN_SEED": seed, "STANDIN_NODES": nodes, "STANDIN_CLIENTS": clients,
             "STANDIN_STRICT": "1" if strict else None, "DASHBOARD_PORT": dashboard_port,
             "STANDIN_MQTT_PORT": mqtt_port, "STANDIN_MQTT_HOST": mqtt_host}
    for name, value in given.items():
        if value is not None:  # read by gunicorn.conf.py, and by a seeding child process
            os.environ[name] = str(value)
    for key, value in (("DATABASE", given["STANDIN_DB"]), ("SEED", seed), ("NODES", nodes),
                       ("CLIENTS", clients), ("STRICT", strict), ("PORT", port),
                       ("DASHBOARD_PORT", dashboard_port)):
        if value is not None:
            app.config[key] = value
    from gunicorn.app.wsgiapp import WSGIApplication

    sys.argv = ["emqx-standin serve", "--config", os.path.join(HERE, "gunicorn.conf.py"),
                "app:app"]
    WSGIApplication("%(prog)s").run()


def main(argv=None):
    """emqx-standin [--version] COMMAND: serve, init-db, seed, reset, status, create-app,
    create-user."""
    group = click.Group(help="A stand-in for the EMQ X 3.0 management REST API (/api/v3/).")
    click.version_option(VERSION, "--version", prog_name="emqx-standin",
                         message=f"%(prog)s %(version)s (EMQ X {EMQX_VERSION} management"
                                 " API)")(group)
    group.add_command(serve)
    for name, command in app.cli.commands.items():
        group.add_command(command, name)
    # The maintenance commands run in the app's context, as under `flask --app app`.
    return group.main(args=argv, prog_name="emqx-standin",
                      obj=ScriptInfo(create_app=lambda: app, set_debug_flag=False))
