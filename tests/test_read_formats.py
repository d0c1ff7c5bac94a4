"""Value formats: uptime, local timestamps, memory strings, load averages."""

import re
import time

import pytest

import app as emqx
from conftest import get_json
from conftest import NODE
from conftest import request_json

pytestmark = pytest.mark.usefixtures("fast_hash")

API = "/api/v3"
UPTIME = re.compile(
    r"^(?:\d+ days,\d+ hours, \d+ minutes, \d+ seconds"
    r"|\d+ hours, \d+ minutes, \d+ seconds"
    r"|\d+ minutes, \d+ seconds"
    r"|\d+ seconds)$")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
MEMORY = re.compile(r"^\d+\.\d{2}[KMG]$")
LOAD = re.compile(r"^\d+\.\d{2}$")
UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def _uptime_seconds(text):
    units = {"days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+) (days|hours|minutes|seconds)",
                                                          text))


def _local(text):
    return time.mktime(time.strptime(text, "%Y-%m-%d %H:%M:%S"))


# Behaviour sheet 6.1: from the largest non-zero unit down, no space after "days,", plural
# words even for 1 (the document's example is 1 days,18 hours, 45 minutes, 1 seconds).
UPTIMES = [
    (86400 + 18 * 3600 + 45 * 60 + 1, "1 days,18 hours, 45 minutes, 1 seconds"),
    (18 * 3600 + 45 * 60 + 1, "18 hours, 45 minutes, 1 seconds"),
    (45 * 60 + 1, "45 minutes, 1 seconds"),
    (1, "1 seconds"),
    (0, "0 seconds"),
    (60, "1 minutes, 0 seconds"),
    (3600, "1 hours, 0 minutes, 0 seconds"),
    (86400, "1 days,0 hours, 0 minutes, 0 seconds"),
    (400 * 86400 + 59, "400 days,0 hours, 0 minutes, 59 seconds"),
]


@pytest.mark.parametrize(("seconds", "text"), UPTIMES, ids=[t for _, t in UPTIMES])
def test_uptime_builds_the_document_forms(seconds, text):
    assert emqx.uptime(seconds) == text
    assert UPTIME.match(text)  # the pattern the routes' answers are checked with below


@pytest.mark.parametrize("path", ["/brokers/", "/nodes/"])
def test_list_uptime_format(client, path):
    for item in get_json(client, API + path)["data"]:
        assert UPTIME.match(item["uptime"]), item["uptime"]


@pytest.mark.parametrize("path", [f"/brokers/{NODE}", f"/nodes/{NODE}"])
def test_lookup_uptime_format(client, path):
    assert UPTIME.match(get_json(client, API + path)["data"]["uptime"])


def test_list_brokers_uptime_has_no_leading_zero_units(client):
    # Built from the largest non-zero unit down: "0 days,..." never appears.
    uptime = get_json(client, API + "/brokers/")["data"][0]["uptime"]
    assert not uptime.startswith("0 ")


def test_list_brokers_datetime_is_local_now(client):
    before = time.time()
    stamp = get_json(client, API + "/brokers/")["data"][0]["datetime"]
    assert TIMESTAMP.match(stamp)
    assert before - 2 <= _local(stamp) <= time.time() + 1


def test_get_broker_uptime_agrees_with_node(client):
    broker = get_json(client, f"{API}/brokers/{NODE}")["data"]
    node = get_json(client, f"{API}/nodes/{NODE}")["data"]
    assert abs(_uptime_seconds(broker["uptime"]) - _uptime_seconds(node["uptime"])) <= 2


@pytest.mark.parametrize(("path", "field"), [
    ("/connections/", "connected_at"), ("/sessions/", "created_at"),
])
def test_list_timestamps_local_format_in_the_past(client, path, field):
    now = time.time()
    for item in get_json(client, API + path)["data"]:
        assert TIMESTAMP.match(item[field]), item[field]
        assert _local(item[field]) <= now + 1


def test_list_node_alarms_timestamp_format_newest_first(client):
    # The seeded alarm alone cannot be out of order: raise a newer one first.
    request_json(client, "POST", "/_standin/alarms", {"id": "formats_alarm"}, code=0)
    alarms = get_json(client, f"{API}/alarms/{NODE}")["data"]
    assert [a["id"] for a in alarms] == ["formats_alarm", "cpu_high_watermark"]
    for alarm in alarms:
        assert TIMESTAMP.match(alarm["timestamp"])
    stamps = [a["timestamp"] for a in alarms]
    assert stamps == sorted(stamps, reverse=True)


def test_list_nodes_memory_strings(client):
    for item in get_json(client, API + "/nodes/")["data"]:
        assert MEMORY.match(item["memory_total"]), item["memory_total"]
        assert MEMORY.match(item["memory_used"]), item["memory_used"]


def test_list_nodes_memory_strings_match_lookup_bytes(client):
    listed = get_json(client, API + "/nodes/")["data"][0]
    looked = get_json(client, f"{API}/nodes/{NODE}")["data"]
    for key in ("memory_total", "memory_used"):
        text, size = listed[key], looked[key]
        assert text == emqx.memory_string(size), (key, text, size)
        # Behaviour sheet 6.2, read back: the largest unit the size exceeds, two decimals.
        unit = text[-1]
        assert size > UNITS[unit] and (unit == "G" or size <= UNITS[unit] << 10), (key, text)
        assert abs(float(text[:-1]) * UNITS[unit] - size) <= 0.005 * UNITS[unit], (key, text)


def test_get_node_memory_used_below_total(client):
    node = get_json(client, f"{API}/nodes/{NODE}")["data"]
    assert 0 < node["memory_used"] <= node["memory_total"]


# Behaviour sheet 6.2: > 1 GiB -> GiB + "G", > 1 MiB -> MiB + "M", > 1 KiB -> KiB + "K"
# (two decimals, divisor 1024), else the plain integer; its example: 80162816 -> "76.45M".
MEMORY_STRINGS = [
    (80162816, "76.45M"), (0, 0), (1023, 1023), (1024, 1024), (1025, "1.00K"),
    (1536, "1.50K"), (1 << 20, "1024.00K"), ((1 << 20) + 1, "1.00M"), (1 << 30, "1024.00M"),
    ((1 << 30) + 1, "1.00G"), (5 * (1 << 30) + (1 << 29), "5.50G"), (1 << 40, "1024.00G"),
]


@pytest.mark.parametrize(("size", "text"), MEMORY_STRINGS, ids=[str(s) for s, _ in MEMORY_STRINGS])
def test_memory_string_follows_the_behaviour_sheet(size, text):
    assert emqx.memory_string(size) == text


@pytest.mark.parametrize("path", ["/nodes/", f"/nodes/{NODE}"])
def test_nodes_load_averages_two_decimals(client, path):
    data = get_json(client, API + path)["data"]
    for item in data if isinstance(data, list) else [data]:
        for key in ("load1", "load5", "load15"):
            assert LOAD.match(item[key]), (key, item[key])


def test_list_nodes_process_counts(client):
    for item in get_json(client, API + "/nodes/")["data"]:
        assert 0 < item["process_used"] <= item["process_available"]
        assert item["max_fds"] > 0


def test_list_brokers_release_strings(client):
    for item in get_json(client, API + "/brokers/")["data"]:
        assert re.match(r"^R\d+/[\d.]+$", item["otp_release"])
        assert item["version"] == "3.0"
