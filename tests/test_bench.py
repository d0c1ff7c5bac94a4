"""The benchmarks still run: bench/micro.py's every part, bench/mqtt_compare.py and
bench/traffic.py at toy sizes (the figures are not judged here, only that each part measures
and prints its table)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.live
def test_micro_runs_every_part_at_toy_sizes():
    out = subprocess.run(
        [sys.executable, "bench/micro.py", "read", "auth", "publish", "worlds", "limits",
         "--clients", "10", "--sizes", "4,8", "--seconds", "0.3", "--warmup", "0",
         "--calls", "250", "--worlds", "5", "--repeat", "2", "--retained", "1000"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    for heading in ("read: GET", "auth: minirest.verify_password", "publish: POST", "worlds: the",
                    "limits: the longest"):
        assert heading in text, text
    # Every timed figure came from answers that counted, not errors.
    read_row = next(line for line in text.splitlines() if line.strip().startswith("10 "))
    assert read_row.split()[3] != "0" and read_row.split()[4] == "0", read_row
    worlds_row = next(line for line in text.splitlines() if line.strip().startswith("5 "))
    assert worlds_row.count("|") == 4, worlds_row


@pytest.mark.live
def test_mqtt_compare_runs_at_toy_sizes():
    if not (shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto")):
        assert not os.environ.get("CI"), "CI installs mosquitto (.ci/run)"
        pytest.skip("Debian's mosquitto is not installed")
    out = subprocess.run(
        [sys.executable, "bench/mqtt_compare.py", "--connects", "20", "--messages", "200",
         "--latency-samples", "10", "--repeats", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    for figure in ("connect rate", "publish QoS 0", "publish QoS 1", "API -> socket p50"):
        row = next(line for line in out.stdout.splitlines() if line.startswith(figure))
        assert row.split()[-3] not in ("0", "-"), row  # the stand-in's figure was measured


def test_compare_describes_itself():
    out = subprocess.run([sys.executable, "bench/compare.py", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--quick" in out.stdout, out.stderr


def test_profile_requests_splits_a_request_into_phases_and_counts_its_sql():
    out = subprocess.run(
        [sys.executable, "bench/profile_requests.py", "first", "publish", "--clients", "20",
         "-n", "20", "--warmup", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    blocks = out.stdout.split("\n== ")[1:]
    assert [b.split(":", 1)[0] for b in blocks] == ["first", "publish"], out.stdout
    for block in blocks:
        phases = {line.split()[0] for line in block.splitlines() if line.strip()}
        assert {"before", "view", "after", "rest", "total"} <= phases, block
        assert "require_credentials" in block and "mean " in block, block
        sql = re.search(r"^SQL statements: ([\d.]+) per request", block, re.M)
        assert sql and float(sql.group(1)) > 0, block


@pytest.mark.live
def test_compare_runs_and_judges_at_toy_sizes():
    """A whole compare.py run, shrunk: both floors measured, every target judged, the large
    page timed (a crash in the report would otherwise show at the end of a long run)."""
    if not (ROOT / "bench" / "node_modules" / ".bin" / "json-server").exists():
        pytest.skip("json-server is not installed (cd bench && npm install)")
    out = subprocess.run(
        [sys.executable, "bench/compare.py", "--sizes", "200,400", "--seconds", "1",
         "--repeats", "1", "--peer-rows", "400", "--large-calls", "2", "--generator", "python",
         "--concurrency", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    row = next(line for line in text.splitlines() if line.startswith("list first page   |"))
    groups = [g.split() for g in row.split("|")[1:4]]  # json-server, 200, 400
    for req_s, sync, gthread, x in groups:
        assert float(sync) > 0 and float(gthread) > 0, row
        assert float(x) == pytest.approx(float(req_s) / max(float(sync), float(gthread)),
                                         abs=0.02), row
    issue = text.split("Issue 17 (Cheap requests)")[1].split("Earlier targets")[0]
    judged = re.findall(r"^\s+(met|MISSED)\s", issue, re.M)
    assert len(judged) == 4 + 7 + 1, issue  # 4 ratios @400, 7 figures' falls, the large page
    assert "@400 >= 0.6x floor" in issue and "page of 400 (no _limit) @400" in issue, issue
    large = re.findall(r"^\s+(200|400)\s+(200|400)\s+[\d.]+\s+[\d.]+\s+-?[\d.]+\s+< 50$", text,
                       re.M)
    assert large == [("200", "200"), ("400", "400")], text
    assert re.search(r"^\d+ of \d+ targets met$", text, re.M), text


@pytest.mark.live
def test_traffic_bench_runs_at_toy_sizes():
    out = subprocess.run(
        [sys.executable, "bench/traffic.py", "--clients", "10", "--seconds", "0.5",
         "--warmup", "0", "--concurrency", "2", "--hours", "0.05"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    for path in ("/api/v3/connections/", "/api/v3/stats/"):
        row = next(line for line in lines if line.startswith(path)).split()
        assert float(row[1]) > 0 and float(row[2]) > 0 and row[6] == "0", row  # both rates
    assert any(line.startswith("lowest on/off:") for line in lines), out.stdout
    after = next(line for line in lines if line.startswith("after")).split()
    assert float(after[1]) > 0, after
    assert "180 simulated seconds" in out.stdout and "publishes 0," not in out.stdout
