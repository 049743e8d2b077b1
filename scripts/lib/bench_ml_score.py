"""Scoring for scripts/bench-ml (issue #19 item 5): alarm episodes against ground truth, and
the two baselines' per-report scores (a static group threshold, a per-device z-score).

Times are in steps of 300 s per device (step = (time - start - device offset) / 300 s).
Stdlib only.
"""

import array
import bisect
import csv
import json
import math

METRICS = ["bytes_out", "bytes_in", "packets_out", "packets_in", "connections"]
GRACE = 6  # steps (30 min) after an attack or burst that still belong to it
DAY = 288


def load_truth(path):
    with open(path) as f:
        t = json.load(f)
    t["index"] = {d["thing"]: i for i, d in enumerate(t["devices"])}

    def span(s):
        d = t["index"][s["thing"]]
        off = t["devices"][d]["offset_ms"]
        step = lambda ms: (ms - t["start_ms"] - off) // t["step_ms"]  # noqa: E731
        return {"device": d, "kind": s["kind"], "start": step(s["start_ms"]), "end": step(s["end_ms"])}

    t["attack_steps"] = [span(s) for s in t["attacks"]]
    t["burst_steps"] = [span(s) for s in t["bursts"]]
    return t


def load_series(path, devices):
    """Per device, a column (array of doubles, in step order) per metric and tcp_ports."""
    cols = [{k: array.array("d") for k in METRICS + ["tcp_ports"]} for _ in range(devices)]
    with open(path) as f:
        head = next(csv.reader(f))
        at = [(head.index(k), k) for k in METRICS + ["tcp_ports"]]
        for r in csv.reader(f):
            c = cols[int(r[0])]
            for i, k in at:
                c[k].append(float(r[i]))
    return cols


def windows(spans, device):
    return [(s["start"], s["end"] + GRACE, s) for s in spans if s["device"] == device]


def runs(flags):
    """(start, end) of each run of True, end exclusive."""
    out, start = [], None
    for i, f in enumerate(flags):
        if f and start is None:
            start = i
        elif not f and start is not None:
            out.append((start, i))
            start = None
    if start is not None:
        out.append((start, len(flags)))
    return out


def score(truth, alarms):
    """alarms: device -> (list of in-alarm steps, list of (start, end) episodes).
    Returns per-attack detection (kind, detected, steps to detect, cold start) and the
    false-alarm episode counts outside / inside benign bursts."""
    attacks, false, benign = [], 0, 0
    for d in range(len(truth["devices"])):
        starts, episodes = alarms.get(d, ([], []))
        aw, bw = windows(truth["attack_steps"], d), windows(truth["burst_steps"], d)
        for lo, hi, s in aw:
            hits = [t for t in starts if lo <= t < hi]
            attacks.append((s["kind"], bool(hits), (min(hits) - lo) if hits else None, s["start"] < 7 * DAY))
        for lo, hi in episodes:
            if any(lo < b and a < hi for a, b, _ in aw):
                continue
            if any(lo < b and a < hi for a, b, _ in bw):
                benign += 1
            else:
                false += 1
    return attacks, false, benign


def from_events(path, truth, profile_of):
    """Replay events (JSON lines) -> {method: {device: (in-alarm steps, episodes)}}, where
    `profile_of(name)` maps a securityProfileName to a method name (or None)."""
    per = {}
    open_at = {}
    end = truth["steps"]
    with open(path) as f:
        for line in f:
            e = json.loads(line)
            m = profile_of(e["securityProfileName"])
            d = truth["index"].get(e["thingName"])
            if m is None or d is None:
                continue
            off = truth["devices"][d]["offset_ms"]
            step = (e["violationEventTime"] - truth["start_ms"] - off) // truth["step_ms"]
            intervals = per.setdefault(m, {}).setdefault(d, ([], []))
            key = (m, d, e["violationId"])
            if e["violationEventType"] == "in-alarm":
                intervals[0].append(step)
                open_at[key] = step
            elif key in open_at:
                start = open_at.pop(key)
                intervals[1].append((start, max(step, start + 1)))
    for (m, d, _), start in open_at.items():
        per[m][d][1].append((start, end))
    # One episode per device while any behavior is in alarm.
    for m in per:
        for d, (starts, eps) in per[m].items():
            merged = []
            for lo, hi in sorted(eps):
                if merged and lo <= merged[-1][1]:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
                else:
                    merged.append((lo, hi))
            per[m][d] = (starts, merged)
    return per


def from_scores(scores, threshold):
    """Per-device score lists -> alarms where score > threshold (one datapoint to alarm and
    to clear, as the profiles say)."""
    out = {}
    for d, s in enumerate(scores):
        eps = runs([x > threshold for x in s])
        out[d] = ([lo for lo, _ in eps], eps)
    return out


def benign_mask(truth, d, n):
    bad = [False] * n
    for s in truth["attack_steps"]:
        if s["device"] == d:
            for i in range(max(0, s["start"]), min(n, s["end"] + GRACE)):
                bad[i] = True
    return bad


class RulesTuner:
    """The static group threshold: per device kind and metric, the value at quantile θ of the
    kind's benign history (θ ≤ 1), or θ × its maximum (θ > 1); more listening ports than the
    kind ever had alarms. `score` gives each report the smallest θ that does not alarm on
    it, so one θ per confidence level is tuned by a scan."""

    def __init__(self):
        self.values, self.ports = {}, {}

    def learn(self, truth, series):
        for d, cols in enumerate(series):
            kind = truth["devices"][d]["kind"]
            mask = benign_mask(truth, d, len(cols["tcp_ports"]))
            for m in METRICS:
                v = self.values.setdefault((kind, m), array.array("d"))
                v.extend(x for x, bad in zip(cols[m], mask) if not bad)
            p = max(x for x, bad in zip(cols["tcp_ports"], mask) if not bad)
            self.ports[kind] = max(self.ports.get(kind, 0), p)

    def done(self):
        for k, v in self.values.items():
            self.values[k] = array.array("d", sorted(v))

    def threshold(self, kind, metric, theta):
        v = self.values[(kind, metric)]
        if theta > 1:
            return v[-1] * theta
        return v[min(len(v) - 1, int(math.ceil(theta * len(v))) - 1)]

    def scores(self, kind, cols):
        """Per report of one device: the smallest θ at which it does not alarm."""
        out = [0.0] * len(cols["tcp_ports"])
        for m in METRICS:
            v = self.values[(kind, m)]
            top, n = v[-1], len(v)
            for i, x in enumerate(cols[m]):
                s = bisect.bisect_left(v, x) / n if x <= top else x / max(top, 1.0)
                if s > out[i]:
                    out[i] = s
        for i, p in enumerate(cols["tcp_ports"]):
            if p > self.ports.get(kind, 0):
                out[i] = math.inf
        return out


def zscores(cols, alpha=1.0 / DAY, warmup=DAY, clip=4.0):
    """Per report, the largest one-sided z-score over METRICS and the listening-port count of
    log(1 + value) against the
    device's own exponentially weighted mean and variance (one-day memory), updated with the
    value winsorised at mean + clip·σ so an attack does not become normal at once. No alarm
    in the first day."""
    n = len(cols["tcp_ports"])
    out = [0.0] * n
    log1p, sqrt = math.log1p, math.sqrt
    for m in METRICS + ["tcp_ports"]:
        col = cols[m]
        mean, var = log1p(col[0]), 0.25
        for i in range(1, n):
            x = log1p(col[i])
            sd = sqrt(var) + 0.05
            z = (x - mean) / sd
            if i >= warmup and z > out[i]:
                out[i] = z
            if x > mean + clip * sd:
                x = mean + clip * sd
            diff = x - mean
            mean += alpha * diff
            var = (1 - alpha) * (var + alpha * diff * diff)
    return out


def tune(score_lists, truths, candidates, budget, steps=1):
    """The most sensitive candidate whose false-alarm episodes (outside benign bursts) per
    device-day on the tuning seeds stay within budget; the least sensitive if none does.
    `steps` > 1: then also that many evenly spaced values between the candidate found and
    the more sensitive one before it, the first that fits wins (a finer operating point)."""
    def fa(c):
        false, days = 0, 0
        for scores, truth in zip(score_lists, truths):
            _, f, _ = score(truth, from_scores(scores, c))
            false += f
            days += len(truth["devices"]) * truth["steps"] / DAY
        return false / days

    cs = sorted(candidates)
    for i, c in enumerate(cs):
        rate = fa(c)
        if rate <= budget:
            if i == 0 or steps <= 1:
                return c, rate
            lo = cs[i - 1]
            for j in range(1, steps):
                f = lo + (c - lo) * j / steps
                r = fa(f)
                if r <= budget:
                    return round(f, 6), r
            return c, rate
    return max(cs), None
