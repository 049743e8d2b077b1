// detect-fleet console: one thing's page — its active alarms, last report (listening ports,
// destinations), cloud-side metrics, and a 14-day chart per metric its profiles watch.
"use strict";

DC.DAYS = 14;
DC.MAX_PAGES = 40; // 40 pages of 250: 10 000 datapoints per chart at most (one a 2 min, 14 days)

// Follows nextToken up to `maxPages` pages of 250; resolves to the concatenated `key` lists.
DC.fetchAll = function (path, params, key, maxPages) {
  var out = [];
  function page(token, n) {
    var p = Object.assign({}, params, { maxResults: 250, nextToken: token });
    return DC.api("GET", path, p).then(function (r) {
      out = out.concat(r[key] || []);
      if (r.nextToken && n + 1 < maxPages) return page(r.nextToken, n + 1);
      return out;
    });
  }
  return page("", 0);
};

// The numeric thresholds of a behavior's criteria (none for sets, statistics and ML).
DC.thresholds = function (profile, b) {
  var c = b.criteria || {};
  var v = DC.number(c.value);
  if (v === null || !c.value || (c.value.count === undefined && c.value.number === undefined)) return [];
  return [{ value: v, label: profile + " / " + b.name + ": " + c.comparisonOperator + " " + v }];
};

// Alarm periods per violation id from violation events: [start, end or now].
DC.alarmPeriods = function (events, now) {
  var open = {}, periods = [];
  events.slice().sort(function (a, b) { return a.violationEventTime - b.violationEventTime; }).forEach(function (e) {
    var key = e.violationId;
    if (e.violationEventType === "in-alarm") open[key] = e;
    else if (open[key]) {
      periods.push({ event: open[key], from: open[key].violationEventTime, to: e.violationEventTime });
      delete open[key];
    }
  });
  Object.keys(open).forEach(function (k) { periods.push({ event: open[k], from: open[k].violationEventTime, to: now }); });
  return periods;
};

DC.portList = function (ports) {
  return (ports || []).map(function (p) {
    return typeof p === "object" ? p.port + (p.interface ? " (" + p.interface + ")" : "") : String(p);
  }).join(", ") || "none";
};

DC.keyValues = function (obj) {
  var rows = Object.keys(obj || {}).map(function (k) {
    return DC.el("tr", {}, DC.el("td", { class: "mono" }, k), DC.el("td", { class: "value" }, DC.value(obj[k])));
  });
  return DC.table(["Metric", "Value"], rows, "None.");
};

// The thing's facts from GET /things/{name}: groups, last report, and `lastMetrics` (the last
// report's device-side values and the last closed cloud-side window).
DC.thingFacts = function (box, info) {
  var last = info.lastMetrics || {};
  var device = last.device || {}, cloud = last.cloud || {};
  function list(metric, key) { return (device[metric] || {})[key] || []; }
  var cards = DC.el("div", { class: "cards" });
  var groups = info.thingGroupNames || [];
  cards.appendChild(DC.el("div", { class: "card" }, DC.el("h2", {}, "Thing"),
    DC.el("p", {}, "Groups: ", groups.length ? groups.join(", ") : "none"),
    DC.el("p", {}, "Registered: ", info.registered === false ? "no (reports only)" : "yes"),
    DC.el("p", {}, "Last report: ", DC.el("span", { class: "mono" }, DC.time(info.lastReportTime) || "never")),
    info.lastRejection ? DC.el("p", {}, "Last rejected: ", DC.el("span", { class: "mono" },
      DC.time(info.lastRejection.time) + " " + info.lastRejection.errorCode)) : null));
  cards.appendChild(DC.el("div", { class: "card", id: "ports" }, DC.el("h2", {}, "Listening ports (last report)"),
    DC.el("p", {}, "TCP: ", DC.el("span", { class: "mono" }, DC.portList(list("aws:listening-tcp-ports", "ports")))),
    DC.el("p", {}, "UDP: ", DC.el("span", { class: "mono" }, DC.portList(list("aws:listening-udp-ports", "ports"))))));
  var dest = list("aws:destination-ip-addresses", "cidrs");
  cards.appendChild(DC.el("div", { class: "card", id: "destinations" }, DC.el("h2", {}, "Destinations (last report)"),
    DC.el("p", { class: "mono" }, dest.length ? dest.slice(0, 50).join(", ") + (dest.length > 50 ? " …" : "") : "none")));
  var counts = {};
  Object.keys(device).forEach(function (k) { if (DC.number(device[k]) !== null && !/ports$|addresses$/.test(k)) counts[k] = device[k]; });
  cards.appendChild(DC.el("div", { class: "card", id: "device-metrics" }, DC.el("h2", {}, "Device metrics (last report)"), DC.keyValues(counts)));
  cards.appendChild(DC.el("div", { class: "card", id: "cloud-side" }, DC.el("h2", {}, "Cloud-side metrics"),
    last.cloudTime ? DC.el("p", {}, "Window closed ", DC.el("span", { class: "mono" }, DC.time(last.cloudTime))) : null,
    DC.keyValues(cloud)));
  box.appendChild(cards);
};

// The (profile, behavior) pairs to chart: the thing's profiles if the API names them, else all.
DC.thingBehaviors = function (info) {
  var named = (info.securityProfiles || info.securityProfileNames || []).map(function (p) {
    return typeof p === "string" ? p : p.name || p.securityProfileName;
  });
  var names = named.length ? Promise.resolve(named) :
    DC.fetchAll("/security-profiles", {}, "securityProfileIdentifiers", 2).then(function (l) {
      return l.slice(0, 50).map(function (p) { return p.name; });
    });
  return names.then(function (list) {
    return Promise.all(list.map(function (n) {
      return DC.api("GET", "/security-profiles/" + encodeURIComponent(n), {}).catch(function () { return { behaviors: [] }; })
        .then(function (p) { return (p.behaviors || []).map(function (b) { return { profile: n, behavior: b }; }); });
    }));
  }).then(function (lists) { return [].concat.apply([], lists).filter(function (x) { return x.behavior.metric; }); });
};

// The chart spans offered (seconds); 14 days (the metric history kept) unless `?span=` says.
DC.SPANS = [[14 * 86400, "14 days"], [86400, "24 hours"], [3600, "1 hour"], [300, "5 minutes"]];

DC.pages.thing = function (view, name) {
  view.appendChild(DC.el("h1", {}, "Thing ", DC.el("span", { class: "mono" }, name)));
  var span = Number(DC.hashParams().span) || DC.DAYS * 86400;
  span = Math.min(Math.max(span, 60), DC.DAYS * 86400);
  var now = Math.floor(Date.now() / 1000), start = now - span;
  var spans = DC.el("p", { class: "legend", id: "spans" }, "Show: ");
  DC.SPANS.forEach(function (s) {
    var a = DC.link("#/thing/" + encodeURIComponent(name) + "?span=" + s[0], s[1]);
    if (s[0] === span) a.className = "current";
    spans.append(a, " ");
  });
  var facts = DC.el("div", { id: "facts" }), alarms = DC.el("div", { id: "thing-alarms" });
  var charts = DC.el("div", { id: "charts" }, DC.el("p", { class: "empty" }, "Loading charts…"));
  view.append(facts, DC.el("h2", {}, "Active alarms"), alarms, DC.el("h2", {}, "Metrics"), spans, DC.legend(), charts);
  DC.api("GET", "/things/" + encodeURIComponent(name), {}).then(function (info) {
    DC.thingFacts(facts, info);
  }, function (err) { DC.show(err.message); });
  DC.api("GET", "/active-violations", { thingName: name, maxResults: 250 }).then(function (r) {
    var rows = (r.activeViolations || []).map(function (v) {
      return DC.el("tr", { "data-violation": v.violationId }, DC.el("td", {}, DC.profileLink(v.securityProfileName)),
        DC.el("td", {}, (v.behavior || {}).name || ""), DC.el("td", { class: "mono" }, DC.time(v.violationStartTime)),
        DC.el("td", { class: "value" }, DC.value(v.lastViolationValue)), DC.verifyCell(v));
    });
    alarms.replaceChildren(DC.table(["Profile", "Behavior", "Since", "Value", "Verification"], rows, "No active alarm."));
  }, function (err) { DC.show(err.message); });
  var events = DC.fetchAll("/violation-events", { thingName: name, startTime: start, endTime: now + 60 }, "violationEvents", 10)
    .catch(function () { return []; });
  Promise.all([DC.api("GET", "/things/" + encodeURIComponent(name), {}).catch(function () { return {}; }), events])
    .then(function (got) {
      return DC.thingBehaviors(got[0]).then(function (pairs) { DC.drawCharts(charts, name, pairs, got[1], start, now); });
    }).catch(function (err) { DC.show(err.message); });
};

DC.drawCharts = function (charts, name, pairs, events, start, now) {
  charts.replaceChildren();
  if (!pairs.length) { charts.appendChild(DC.el("p", { class: "empty" }, "No behavior watches this thing.")); return; }
  var byMetric = {};
  pairs.forEach(function (p) { (byMetric[p.behavior.metric] = byMetric[p.behavior.metric] || []).push(p); });
  var periods = DC.alarmPeriods(events, now);
  Object.keys(byMetric).sort().forEach(function (metric) {
    var box = DC.el("div", { class: "chart-box", "data-metric": metric }, DC.el("h3", { class: "mono" }, metric),
      DC.el("p", { class: "empty loading" }, "Loading…"));
    charts.appendChild(box);
    var thresholds = [], behaviors = byMetric[metric];
    behaviors.forEach(function (p) { thresholds = thresholds.concat(DC.thresholds(p.profile, p.behavior)); });
    var alarms = periods.filter(function (a) {
      var b = a.event.behavior || {};
      return behaviors.some(function (p) { return p.profile === a.event.securityProfileName && p.behavior.name === b.name; });
    }).map(function (a) { return [a.from, a.to]; });
    DC.fetchAll("/metric-values", { thingName: name, metricName: metric, startTime: start, endTime: now + 60 },
      "metricDatumList", DC.MAX_PAGES).then(function (list) {
      var points = list.map(function (d) { return [Number(d.timestamp), DC.number(d.value)]; })
        .filter(function (p) { return p[1] !== null && !isNaN(p[0]); }).sort(function (a, b) { return a[0] - b[0]; });
      var criteria = behaviors.map(function (p) { return p.profile + " / " + p.behavior.name + ": " + DC.criteria(p.behavior); });
      box.replaceChildren(DC.el("h3", { class: "mono" }, metric),
        DC.chart({ points: points, start: start, end: now, thresholds: thresholds, alarms: alarms, title: metric }),
        DC.el("p", { class: "legend" }, points.length + " datapoints. " + criteria.join(" · ")));
    }, function (err) { box.replaceChildren(DC.el("h3", { class: "mono" }, metric), DC.el("p", { class: "empty error" }, err.message)); });
  });
};
