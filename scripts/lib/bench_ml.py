"""scripts/bench-ml's driver (issue #19 item 5): simulates tuning and scored seeds, tunes the
two baselines on the tuning seeds, replays the scored seeds through `detect-fleet replay` and
prints detection quality per method and confidence level. See docs/bench-ml.md.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, ProcessPoolExecutor

sys.path.insert(0, os.path.dirname(__file__))
import bench_ml_score as sc  # noqa: E402

LEVELS = ["LOW", "MEDIUM", "HIGH"]
# False-alarm episodes per device-day (outside benign bursts) each level may spend: about
# one a week, one a month, one a quarter per device.
BUDGET = {"LOW": 1 / 7, "MEDIUM": 1 / 30, "HIGH": 1 / 90}
THETAS = [0.99, 0.995, 0.998, 0.999, 0.9995, 0.9998, 0.9999, 1.0, 1.25, 1.5, 2, 3, 5, 10]
KS = [2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7, 8, 10, 12, 15, 20, 30]
ML_METRICS = ["aws:all-bytes-out", "aws:all-bytes-in", "aws:all-packets-out",
              "aws:all-packets-in", "aws:num-established-tcp-connections",
              "aws:num-listening-tcp-ports"]
RULE_METRICS = {"bytes_out": "aws:all-bytes-out", "bytes_in": "aws:all-bytes-in",
                "packets_out": "aws:all-packets-out", "packets_in": "aws:all-packets-in",
                "connections": "aws:num-established-tcp-connections"}


def simulate(a, seed, scored):
    d = os.path.join(a.work, f"seed-{seed}")
    os.makedirs(d, exist_ok=True)
    out = os.path.join(d, "reports.jsonl") if scored else "/dev/null"
    subprocess.run([a.simulator, "--seed", str(seed), "--devices", str(a.devices), "--days",
                    str(a.days), "--out", out, "--truth", os.path.join(d, "truth.json"),
                    "--series", os.path.join(d, "series.csv")], check=True)
    return d


def load(d):
    truth = sc.load_truth(os.path.join(d, "truth.json"))
    return truth, sc.load_series(os.path.join(d, "series.csv"), len(truth["devices"]))


def zscores_of(d):
    truth, series = load(d)
    return [sc.zscores(c) for c in series]


def rule(name, metric, value, duration):
    c = {"comparisonOperator": "less-than-equals", "value": {"count": value},
         "consecutiveDatapointsToAlarm": 1, "consecutiveDatapointsToClear": 1}
    if duration:
        c["durationSeconds"] = 300
    return {"name": name, "metric": metric, "criteria": c}


def write_profiles(a, tuner, thetas, ml):
    pdir = os.path.join(a.work, "profiles")
    os.makedirs(pdir, exist_ok=True)
    attach = []
    for level in LEVELS:
        for kind in sorted(tuner.ports):
            name = f"rules-{level.lower()}-{kind}"
            b = [rule(m.replace("_", "-"), metric,
                      int(tuner.threshold(kind, m, thetas[level]) + 1), m != "connections")
                 for m, metric in RULE_METRICS.items()]
            b.append(rule("listening-ports", "aws:num-listening-tcp-ports", int(tuner.ports[kind]), False))
            with open(os.path.join(pdir, name + ".json"), "w") as f:
                json.dump({"securityProfileName": name, "behaviors": b}, f, indent=1)
            attach.append((name, f"group:{kind}"))
        name = f"ml-{level.lower()}"
        b = [{"name": m.split(":")[1], "metric": m, "criteria": {
            "consecutiveDatapointsToAlarm": 1, "consecutiveDatapointsToClear": 1,
            "mlDetectionConfig": {"confidenceLevel": level}}} for m in ML_METRICS]
        with open(os.path.join(pdir, name + ".json"), "w") as f:
            json.dump({"securityProfileName": name, "behaviors": b}, f, indent=1)
        if ml:
            attach.append((name, "all-things"))
    text = ('[broker]\nendpoint = "127.0.0.1"\nusername = "bench"\npassword_file = "/dev/null"\n'
            f'[fleet]\nprofiles_dir = "{pdir}"\nmin_interval_secs = 300\n')
    for p, t in attach:
        text += f'[[attach]]\nprofile = "{p}"\ntarget = "{t}"\n'
    path = os.path.join(a.work, "fleet.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def ml_evaluated(a, config):
    """False while detect-fleet loads ML behaviors without evaluating them."""
    out = subprocess.run([a.fleet, "check-config", "--config", config], capture_output=True,
                         text=True, check=True).stdout
    return not any("mlDetectionConfig" in l and "not evaluated" in l for l in out.splitlines())


def replay(a, config, d):
    events = os.path.join(d, "events.jsonl")
    with open(events, "w") as out:
        r = subprocess.run([a.fleet, "replay", "--config", config, "--seed", "1",
                            os.path.join(d, "reports.jsonl")], stdout=out, check=True,
                           stderr=subprocess.PIPE, text=True)
    print(r.stderr.strip().splitlines()[-1])
    return events


def method_of(name):
    parts = name.split("-")
    if parts[0] == "rules":
        return f"rules-group {parts[1].upper()}"
    if parts[0] == "ml":
        return f"ml {parts[1].upper()}"
    return None


def summarize(results, days):
    """results: list of (attacks, false, benign) per seed -> printable figures."""
    attacks = [x for r in results for x in r[0]]
    false = sum(r[1] for r in results)
    benign = sum(r[2] for r in results)
    by = {}
    for kind, hit, ttd, cold in attacks:
        by.setdefault(kind, [0, 0])[0] += hit
        by[kind][1] += 1
    ttds = sorted(t * 5 for _, hit, t, _ in attacks if hit)
    cold = [hit for _, hit, _, c in attacks if c]
    pct = lambda v, q: v[min(len(v) - 1, int(q * len(v)))] if v else None  # noqa: E731
    return {"recall": sum(h for _, h, _, _ in attacks) / max(1, len(attacks)),
            "by": by, "ttd_med": statistics.median(ttds) if ttds else None,
            "ttd_p90": pct(ttds, 0.9), "fa": false / days, "fa_burst": benign / days,
            "cold": f"{sum(cold)}/{len(cold)}"}


KINDS = ["port_scan", "ddos", "exfiltration", "c2_heartbeat", "new_listener"]


def row(method, level, s, note=""):
    if s is None:
        return f"{method:<13} {level:<7} {note}"
    kinds = " ".join(f"{s['by'].get(k, [0, 0])[0]:>2}/{s['by'].get(k, [0, 0])[1]:<2}" for k in KINDS)
    ttd = "-" if s["ttd_med"] is None else f"{s['ttd_med']:.0f}/{s['ttd_p90']:.0f}"
    return (f"{method:<13} {level:<7} {s['recall']:.2f}   {kinds}  {s['cold']:>6}  {ttd:>10}"
            f"  {s['fa']:.3f}   {s['fa_burst']:.3f}  {note}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--scored", default="101,102")
    p.add_argument("--tuning", default="201,202")
    p.add_argument("--devices", type=int, default=60)
    p.add_argument("--days", type=int, default=42)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--work", required=True)
    p.add_argument("--fleet", required=True)
    p.add_argument("--simulator", required=True)
    a = p.parse_args()
    scored = [int(x) for x in a.scored.split(",")]
    tuning = [int(x) for x in a.tuning.split(",")]
    t0 = time.time()
    with ThreadPoolExecutor(a.jobs) as pool:
        dirs = list(pool.map(lambda s: simulate(a, s[0], s[1]),
                             [(s, False) for s in tuning] + [(s, True) for s in scored]))
    tdirs, sdirs = dirs[:len(tuning)], dirs[len(tuning):]
    tuner, truths = sc.RulesTuner(), []
    for d in tdirs:
        truth, series = load(d)
        tuner.learn(truth, series)
        truths.append(truth)
    tuner.done()
    rule_scores = []
    for d, truth in zip(tdirs, truths):
        _, series = load(d)
        rule_scores.append([tuner.scores(truth["devices"][i]["kind"], c) for i, c in enumerate(series)])
    with ProcessPoolExecutor(a.jobs) as pool:
        z_tuning = list(pool.map(zscores_of, tdirs))
    thetas, ks = {}, {}
    for level in LEVELS:
        thetas[level], fa_r = sc.tune(rule_scores, truths, THETAS, BUDGET[level])
        ks[level], fa_z = sc.tune(z_tuning, truths, KS, BUDGET[level])
        print(f"tuned {level}: static group threshold θ = {thetas[level]} (tuning FA {fa_r}), "
              f"z-score k = {ks[level]} (tuning FA {fa_z})")
    del rule_scores, z_tuning
    config = write_profiles(a, tuner, thetas, False)
    ml = ml_evaluated(a, config)
    if ml:
        config = write_profiles(a, tuner, thetas, True)
    # The z-scores of the scored seeds are computed while the replays run (one process).
    with ProcessPoolExecutor(1) as zpool, ThreadPoolExecutor(a.jobs) as pool:
        z_future = [zpool.submit(zscores_of, d) for d in sdirs]
        events = list(pool.map(lambda d: replay(a, config, d), sdirs))
        z_scored = [f.result() for f in z_future]
    results = {}
    days = 0
    for d, ev, z in zip(sdirs, events, z_scored):
        truth = sc.load_truth(os.path.join(d, "truth.json"))
        days += len(truth["devices"]) * truth["steps"] / sc.DAY
        per = sc.from_events(ev, truth, method_of)
        for level in LEVELS:
            for m in [f"rules-group {level}", f"ml {level}"]:
                results.setdefault(m, []).append(sc.score(truth, per.get(m, {})))
            results.setdefault(f"z-score {level}", []).append(sc.score(truth, sc.from_scores(z, ks[level])))
    print(f"\nscored seeds {scored}, tuning seeds {tuning}: {a.devices} devices × {a.days} days "
          f"at 300 s per seed; {days:.0f} device-days scored; {time.time() - t0:.0f} s")
    print("method        level   recall " + " ".join(f"{k[:5]:<5}" for k in KINDS)
          + "  cold  TTD med/p90 min  FA/dev-day  +burst")
    for level in LEVELS:
        if ml:
            print(row("ml", level, summarize(results[f"ml {level}"], days)))
        else:
            print(row("ml", level, None, "n/a (no model yet: detect-fleet does not evaluate mlDetectionConfig)"))
        print(row("rules-group", level, summarize(results[f"rules-group {level}"], days), f"θ={thetas[level]}"))
        print(row("z-score", level, summarize(results[f"z-score {level}"], days), f"k={ks[level]}"))


if __name__ == "__main__":
    main()
