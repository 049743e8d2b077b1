#!/usr/bin/env python3
"""Fills a detect-fleet SQLite store (schema already created by detect-fleet) for
scripts/bench-console: THINGS things, about EVENTS violation events over the last 14 days
(closed alarms: in-alarm + alarm-cleared; ACTIVE alarms still open), and one thing's metric
history (a report every 5 minutes for 14 days). Usage: fill-console-store.py DB THINGS EVENTS ACTIVE THING"""
import json
import random
import sqlite3
import sys
import time

db, things, events, active, thing = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
now = int(time.time() * 1000)
day = 86_400_000
rng = random.Random(7)
behavior = {"name": "few-listeners", "metric": "aws:num-listening-tcp-ports",
            "criteria": {"comparisonOperator": "less-than", "value": {"count": 3}}}
profile = "gateway-baseline"
conn = sqlite3.connect(db)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("PRAGMA synchronous=OFF")
names = [f"thing-{i:06d}" for i in range(things)]
if thing not in names:
    names.append(thing)
conn.executemany(
    "INSERT OR REPLACE INTO things (name, registered, groups, last_report_id, last_report_ms, version) VALUES (?, 1, '[\"fleet\"]', ?, ?, 1)",
    ((n, i + 1, now - rng.randrange(300_000)) for i, n in enumerate(names)))


def event(vid, name, kind, t, value):
    e = {"violationEventTime": t, "thingName": name, "securityProfileName": profile, "behavior": behavior,
         "violationEventType": kind, "violationId": vid, "verificationState": "UNKNOWN"}
    if value is not None:
        e["metricValue"] = {"count": value}
        e["reportId"] = t // 1000
    return json.dumps(e, separators=(",", ":"))


def rows():
    closed = max((events - active) // 2, 0)
    for i in range(closed + active):
        name = names[i % len(names)]
        vid = f"{i:032x}"
        start = now - 14 * day + rng.randrange(14 * day - 3_600_000)
        if i < closed:
            end = start + rng.randrange(60_000, 3_600_000)
            yield vid, name, start, end, [(start, event(vid, name, "in-alarm", start, 4)),
                                          (end, event(vid, name, "alarm-cleared", end, 2))]
        else:
            yield vid, name, start, None, [(start, event(vid, name, "in-alarm", start, 4))]


batch_v, batch_e = [], []


def flush():
    conn.executemany(
        "INSERT INTO violations (violation_id, thing, profile, behavior, start_ms, last_violation_ms, last_value, end_ms, end_type, suppressed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
        batch_v)
    conn.executemany(
        "INSERT INTO events (violation_id, time_ms, event, suppressed, sent, webhook_sent) VALUES (?, ?, ?, 0, 1, 1)",
        batch_e)
    batch_v.clear()
    batch_e.clear()


btext = json.dumps(behavior, separators=(",", ":"))
for vid, name, start, end, evs in rows():
    batch_v.append((vid, name, profile, btext, start, end or start, '{"count":4}', end,
                    "alarm-cleared" if end else None))
    batch_e.extend((vid, t, e) for t, e in evs)
    if len(batch_e) >= 50_000:
        flush()
flush()
# One thing's history: a long-key JSON report every 5 minutes (detect-fleet reads JSON too).
conn.execute("INSERT OR IGNORE INTO history_things (name) VALUES (?)", (thing,))
tid = conn.execute("SELECT id FROM history_things WHERE name = ?", (thing,)).fetchone()[0]
points = []
for k in range(14 * 288):
    t = now - 14 * day + k * 300_000
    n = 2 + (1 if (k // 288) % 5 == 4 and k % 288 < 36 else 0) + (k % 7 == 0)
    ports = [{"port": p} for p in (22, 443, 8080, 1883)[:n]]
    report = {"header": {"report_id": t // 1000, "version": "1.0"},
              "metrics": {"listening_tcp_ports": {"ports": ports, "total": n},
                          "network_stats": {"bytes_in": 40_000 + k % 288 * 100, "bytes_out": 20_000 + k % 97 * 300,
                                            "packets_in": 400, "packets_out": 300}}}
    points.append((tid, 0, t, json.dumps(report, separators=(",", ":")).encode()))
conn.executemany("INSERT OR REPLACE INTO history (thing, side, time_ms, data) VALUES (?, ?, ?, ?)", points)
conn.commit()
print(f"filled {db}: {len(names)} things, {conn.execute('SELECT count(*) FROM events').fetchone()[0]} events, "
      f"{conn.execute('SELECT count(*) FROM violations WHERE end_ms IS NULL').fetchone()[0]} active, "
      f"{len(points)} history points for {thing}")
