"""The floor for bench/compare.py: the most any Flask service can do for one page of connections.

A minimal Flask app that answers every path with the same precomputed body: one page of 100
connections in the stand-in's JSON (`{"code":0,"data":[...],"meta":{...}}`), built once at
import. Basic auth is NOT checked, nothing is read from a database, nothing is logged; what is
left is gunicorn + Werkzeug + Flask routing + one Response object per request.

The page is read from the file named by FLOOR_PAGE (compare.py saves a real first page fetched
from the stand-in there); without it an identical-shaped page is synthesized.

Run it under the same gunicorn settings as the stand-in, from the repository root:
    python -m gunicorn -w 2 -b 127.0.0.1:8081 --access-logfile /dev/null bench.floor_app:app
"""

import json
import os

from flask import Flask
from flask import Response


def synthesized_page(limit=100, count=1000):
    data = []
    for i in range(limit):
        data.append({
            "clean_start": True,
            "client_id": f"sensor-eu-west-{i:07d}",
            "connected_at": "2024-01-01 12:00:00",
            "ipaddress": f"10.0.{i // 256}.{i % 256}",
            "is_bridge": False,
            "is_super": False,
            "keepalive": 60,
            "mountpoint": "undefined",
            "node": "emqx@127.0.0.1",
            "peercert": "nossl",
            "port": 40000 + i,
            "proto_name": "MQTT",
            "proto_ver": 4,
            "username": f"sensor-{i}",
            "will_topic": "undefined",
            "zone": "external",
        })
    return {"code": 0, "data": data, "meta": {"page": 1, "limit": limit, "count": count}}


def load_page():
    path = os.environ.get("FLOOR_PAGE")
    if path:
        with open(path, "rb") as f:
            raw = f.read()
        json.loads(raw)  # must be JSON; served byte for byte
        return raw
    return json.dumps(synthesized_page(), separators=(",", ":")).encode()


PAGE = load_page()

app = Flask(__name__)


@app.route("/", defaults={"path": ""}, methods=["GET", "POST"])
@app.route("/<path:path>", methods=["GET", "POST"])
def page(path):
    if path == "status":
        return Response("Node emqx@127.0.0.1 is started\nemqx is running", mimetype="text/plain")
    return Response(PAGE, mimetype="application/json")
