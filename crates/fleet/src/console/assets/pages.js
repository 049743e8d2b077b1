// detect-fleet console: the list pages — violation history with its filters, things, security
// profiles and one profile (behaviors, targets, ML model status). Each reads one page at a time.
"use strict";

// Reads "#/history?thing=a&profile=b" into an object (the filters live in the address).
DC.hashParams = function () {
  var q = location.hash.split("?")[1] || "";
  var out = {};
  new URLSearchParams(q).forEach(function (v, k) { out[k] = v; });
  return out;
};

// "2026-12-06T11:10" (datetime-local, read as UTC) ↔ epoch seconds.
DC.fromInput = function (text) {
  var ms = Date.parse(text + (/Z$/.test(text) ? "" : "Z"));
  return isNaN(ms) ? null : Math.floor(ms / 1000);
};
DC.toInput = function (secs) { return new Date(secs * 1000).toISOString().slice(0, 16); };

DC.pages.history = function (view) {
  view.appendChild(DC.el("h1", {}, "Violation history"));
  var p = DC.hashParams();
  var now = Math.floor(Date.now() / 1000);
  var form = DC.el("form", { class: "filters", id: "history-filters" });
  function field(label, name, type, value) {
    var input = DC.el("input", { name: name, type: type, value: value || "" });
    form.appendChild(DC.el("label", {}, label, input));
  }
  field("Thing", "thing", "text", p.thing);
  field("Profile", "profile", "text", p.profile);
  field("Behavior", "behavior", "text", p.behavior);
  var select = DC.el("select", { name: "verification" }, DC.el("option", { value: "" }, "any"));
  DC.STATES.forEach(function (s) {
    var o = DC.el("option", { value: s }, s);
    if (p.verification === s) o.selected = true;
    select.appendChild(o);
  });
  form.appendChild(DC.el("label", {}, "Verification", select));
  field("From (UTC)", "from", "datetime-local", p.from || DC.toInput(now - 14 * 86400));
  field("To (UTC)", "to", "datetime-local", p.to || DC.toInput(now + 60));
  form.appendChild(DC.el("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var q = new URLSearchParams();
    new FormData(form).forEach(function (v, k) { if (v) q.append(k, v); });
    location.hash = "#/history?" + q.toString();
  });
  view.appendChild(form);
  var start = DC.fromInput(p.from || DC.toInput(now - 14 * 86400));
  var end = DC.fromInput(p.to || DC.toInput(now + 60));
  var tableBox = DC.el("div", { id: "history" });
  DC.pager(view, function (token) {
    return DC.api("GET", "/violation-events", {
      startTime: start, endTime: end, thingName: p.thing, securityProfileName: p.profile,
      verificationState: p.verification, nextToken: token,
      // ListViolationEvents has no behavior filter: with one, pages are of 250, filtered here.
      maxResults: p.behavior ? 250 : DC.PAGE_SIZE,
    }).then(function (r) {
      var events = (r.violationEvents || []).filter(function (e) {
        return !p.behavior || (e.behavior || {}).name === p.behavior;
      });
      var rows = events.map(function (e) {
        var behavior = e.behavior || {};
        return DC.el("tr", { "data-violation": e.violationId },
          DC.el("td", { class: "mono" }, DC.time(e.violationEventTime)),
          DC.el("td", {}, e.violationEventType || ""),
          DC.el("td", {}, DC.thingLink(e.thingName || "")),
          DC.el("td", {}, DC.profileLink(e.securityProfileName || "")),
          DC.el("td", {}, behavior.name || ""),
          DC.el("td", { class: "value" }, DC.value(e.metricValue)),
          DC.el("td", { class: "state state-" + (e.verificationState || "UNKNOWN") }, e.verificationState || ""));
      });
      tableBox.replaceChildren(DC.table(["Time", "Event", "Thing", "Profile", "Behavior", "Value", "Verification"],
        rows, "No violation event in this range" + (p.behavior ? " on this page of 250." : ".")));
      return r.nextToken;
    });
  });
  view.appendChild(tableBox);
};

DC.pages.things = function (view) {
  view.appendChild(DC.el("h1", {}, "Things"));
  var form = DC.el("form", { class: "filters" },
    DC.el("label", {}, "Open a thing by name", DC.el("input", { name: "name", type: "text" })),
    DC.el("button", { type: "submit" }, "Open"));
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var name = new FormData(form).get("name");
    if (name) location.hash = "#/thing/" + encodeURIComponent(name);
  });
  view.appendChild(form);
  var tableBox = DC.el("div", { id: "things" });
  DC.pager(view, function (token) {
    return DC.api("GET", "/things", { maxResults: DC.PAGE_SIZE, nextToken: token }).then(function (r) {
      var rows = (r.things || []).map(function (t) {
        var groups = t.thingGroupNames || t.groups || [];
        var last = t.lastReportTime !== undefined ? t.lastReportTime : t.lastReport;
        return DC.el("tr", {},
          DC.el("td", {}, DC.thingLink(t.thingName || "")),
          DC.el("td", {}, groups.join(", ")),
          DC.el("td", { class: "mono" }, DC.time(last)),
          DC.el("td", {}, t.registered === false ? "no" : "yes"));
      });
      tableBox.replaceChildren(DC.table(["Thing", "Groups", "Last report", "Registered"], rows, "No thing."));
      return r.nextToken;
    });
  });
  view.appendChild(tableBox);
};

DC.pages.profiles = function (view) {
  view.appendChild(DC.el("h1", {}, "Security profiles"));
  var tableBox = DC.el("div", { id: "profiles" });
  DC.pager(view, function (token) {
    return DC.api("GET", "/security-profiles", { maxResults: DC.PAGE_SIZE, nextToken: token }).then(function (r) {
      var rows = (r.securityProfileIdentifiers || []).map(function (p) {
        return DC.el("tr", {}, DC.el("td", {}, DC.profileLink(p.name || "")), DC.el("td", { class: "mono" }, p.arn || ""));
      });
      tableBox.replaceChildren(DC.table(["Profile", "ARN"], rows, "No security profile loaded."));
      return r.nextToken;
    });
  });
  view.appendChild(tableBox);
};

// A behavior's criteria in one line: operator and value, or the statistical threshold, or ML.
DC.criteria = function (b) {
  var c = b.criteria;
  if (!c) return "(no criteria: metric retained only)";
  var parts = [];
  if (c.comparisonOperator) parts.push(c.comparisonOperator);
  if (c.value) parts.push(DC.value(c.value));
  if (c.statisticalThreshold) parts.push("statistic " + c.statisticalThreshold.statistic);
  if (c.mlDetectionConfig) parts.push("ML confidence " + c.mlDetectionConfig.confidenceLevel);
  if (c.durationSeconds) parts.push("for " + c.durationSeconds + " s");
  if (c.consecutiveDatapointsToAlarm) parts.push(c.consecutiveDatapointsToAlarm + " to alarm");
  if (c.consecutiveDatapointsToClear) parts.push(c.consecutiveDatapointsToClear + " to clear");
  return parts.join(", ");
};

DC.pages.profile = function (view, name) {
  view.appendChild(DC.el("h1", {}, "Security profile ", DC.el("span", { class: "mono" }, name)));
  var box = DC.el("div", { id: "profile" });
  view.appendChild(box);
  DC.api("GET", "/security-profiles/" + encodeURIComponent(name), {}).then(function (p) {
    if (p.securityProfileDescription) box.appendChild(DC.el("p", {}, p.securityProfileDescription));
    // ML behaviors' status: AWS's GetBehaviorModelTrainingSummaries, keyed by behavior name.
    var models = {};
    (p.behaviorModelTrainingSummaries || []).forEach(function (s) {
      models[s.behaviorName] = s.modelStatus + (s.datapointsCollectionPercentage !== undefined ?
        " (" + Math.round(s.datapointsCollectionPercentage) + "% collected)" : "");
    });
    var rows = (p.behaviors || []).map(function (b) {
      var model = models[b.name] || b.modelStatus || "";
      return DC.el("tr", {}, DC.el("td", {}, b.name || ""), DC.el("td", { class: "mono" }, b.metric || ""),
        DC.el("td", {}, DC.criteria(b)), DC.el("td", {}, model),
        DC.el("td", {}, b.suppressAlerts ? "suppressed" : ""));
    });
    box.appendChild(DC.el("h2", {}, "Behaviors"));
    box.appendChild(DC.table(["Behavior", "Metric", "Criteria", "ML model", "Alerts"], rows, "No behavior."));
    box.appendChild(DC.el("h2", {}, "Targets"));
    var targets = DC.el("div", { id: "targets" });
    box.appendChild(targets);
    DC.pager(box, function (token) {
      return DC.api("GET", "/security-profiles/" + encodeURIComponent(name) + "/targets",
        { maxResults: DC.PAGE_SIZE, nextToken: token }).then(function (r) {
        var trows = (r.securityProfileTargets || []).map(function (t) {
          return DC.el("tr", {}, DC.el("td", { class: "mono" }, t.arn || t.name || JSON.stringify(t)));
        });
        targets.replaceChildren(DC.table(["Target"], trows, "Attached to nothing."));
        return r.nextToken;
      });
    });
  }, function (err) { DC.show(err.message); });
};
