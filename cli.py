"""Commands of the stand-in (`flask --app app <command>`), beside app.py's `init-db`.

seed, reset, status, create-app and create-user; app.py adds them to its command line.
"""

import os
import sqlite3

import click
from flask import current_app
from flask.cli import AppGroup

import seed as seeding
import standin
from app import ensure_database
from app import generate_secret
from app import hash_password
from app import insert_app
from app import insert_user
from app import open_db
from app import seed_with_bar
from app import transaction

commands = AppGroup("standin")


def _build(path, seed, nodes, clients):
    """A builder for seed_with_bar: a new file is created, an existing one rebuilt."""
    fresh = not (os.path.exists(path) and os.path.getsize(path))

    def build(progress):
        if fresh:
            ensure_database(path, seed, nodes, clients, progress=progress)
            return
        db = open_db(path)
        try:
            standin.rebuild(db, seed, nodes, clients, progress=progress)
        finally:
            db.close()

    return build


def _database_settings(path):
    ensure_database(path)
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
        click.echo(f"cluster   {cluster['routes_count']} routes, {cluster['topics_count']} topics,"
                   f" {cluster['retained_count']} retained messages")
        for table in ("banned", "apps", "users", "alarms"):
            count = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            click.echo(f"{table:<9} {count}")
    finally:
        db.close()


def _insert(path, what, insert):
    """Run `insert(db)` in a write transaction on the (created if need be) database."""
    ensure_database(path)
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
