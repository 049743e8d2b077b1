// detect-fleet console: the core — API calls with the bearer token, the hash router, paging,
// formatting helpers, and the alarms page. Other pages register themselves in DC.pages.
"use strict";
var DC = (window.DC = { pages: {} });

DC.TOKEN_KEY = "detect-fleet-token";
DC.STATES = ["TRUE_POSITIVE", "FALSE_POSITIVE", "BENIGN_POSITIVE", "UNKNOWN"];
DC.PAGE_SIZE = 25;

DC.token = function () {
  try { return sessionStorage.getItem(DC.TOKEN_KEY) || ""; } catch (e) { return ""; }
};

// Calls /api/v1 + path; resolves to the JSON body, rejects with AWS's error message.
DC.api = function (method, path, params, body) {
  var qs = new URLSearchParams();
  Object.keys(params || {}).forEach(function (k) {
    var v = params[k];
    if (v !== undefined && v !== null && v !== "") qs.append(k, String(v));
  });
  var url = "/api/v1" + path + (qs.toString() ? "?" + qs.toString() : "");
  var headers = { Accept: "application/json" };
  var token = DC.token();
  if (token) headers.Authorization = "Bearer " + token;
  var init = { method: method, headers: headers, credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return fetch(url, init).then(function (r) {
    return r.text().then(function (text) {
      var json = null;
      try { json = text ? JSON.parse(text) : {}; } catch (e) { json = null; }
      if (r.ok && json) return json;
      var type = r.headers.get("x-amzn-ErrorType") || (json && json.__type) || "HTTP " + r.status;
      var msg = (json && (json.message || json.Message)) || text.slice(0, 200);
      throw new Error(type.split(":")[0] + ": " + msg);
    });
  });
};

// Element builder: el("td", {class: "x"}, "text", child, ...). Text is always text, never HTML.
DC.el = function (tag, attrs) {
  var e = document.createElement(tag);
  Object.keys(attrs || {}).forEach(function (k) {
    if (k === "text") e.textContent = attrs[k];
    else if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, attrs[k]);
  });
  for (var i = 2; i < arguments.length; i++) {
    var c = arguments[i];
    if (c === null || c === undefined) continue;
    e.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return e;
};

DC.show = function (text, ok) {
  var m = document.getElementById("message");
  m.textContent = text || "";
  m.className = ok ? "ok" : "";
  m.hidden = !text;
};

// Epoch seconds (AWS's JSON dates) → "2026-12-06 11:10:54Z".
DC.time = function (secs) {
  if (secs === undefined || secs === null || isNaN(secs)) return "";
  return new Date(Number(secs) * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
};

// A metric value ({count}|{number}|{ports}|{cidrs}|{numbers}|{strings}) as short text.
DC.value = function (v) {
  if (!v || typeof v !== "object") return v === undefined || v === null ? "" : String(v);
  var parts = [];
  ["count", "number"].forEach(function (k) { if (v[k] !== undefined) parts.push(String(v[k])); });
  ["ports", "cidrs", "numbers", "strings"].forEach(function (k) {
    if (Array.isArray(v[k])) {
      var list = v[k].slice(0, 8).join(", ") + (v[k].length > 8 ? ", … (" + v[k].length + ")" : "");
      parts.push(k + ": " + list);
    }
  });
  return parts.length ? parts.join("; ") : JSON.stringify(v);
};

DC.link = function (hash, text) { return DC.el("a", { href: hash }, text); };
DC.thingLink = function (name) { return DC.link("#/thing/" + encodeURIComponent(name), name); };
DC.profileLink = function (name) { return DC.link("#/profile/" + encodeURIComponent(name), name); };

DC.table = function (heads, rows, emptyText) {
  if (!rows.length) return DC.el("p", { class: "empty" }, emptyText || "Nothing to show.");
  var thead = DC.el("tr", {});
  heads.forEach(function (h) { thead.appendChild(DC.el("th", {}, h)); });
  var t = DC.el("table", {}, DC.el("thead", {}, thead));
  var body = DC.el("tbody", {});
  rows.forEach(function (r) { body.appendChild(r); });
  t.appendChild(body);
  return t;
};

// A pager over nextToken: keeps the tokens of the pages seen so "previous" works; `load(token)`
// fetches one page and draws it, resolving to the page's nextToken.
DC.pager = function (box, load) {
  var tokens = [""], index = 0;
  var prev = DC.el("button", { type: "button", class: "prev" }, "← Previous");
  var next = DC.el("button", { type: "button", class: "next" }, "Next →");
  var where = DC.el("span", {});
  function go(i) {
    prev.disabled = next.disabled = true;
    load(tokens[i]).then(function (nextToken) {
      index = i;
      tokens.length = i + 1;
      if (nextToken) tokens.push(nextToken);
      prev.disabled = index === 0;
      next.disabled = !nextToken;
      where.textContent = "page " + (index + 1);
    }, function (err) { DC.show(err.message); prev.disabled = index === 0; });
  }
  prev.addEventListener("click", function () { if (index > 0) go(index - 1); });
  next.addEventListener("click", function () { if (tokens.length > index + 1) go(index + 1); });
  box.appendChild(DC.el("div", { class: "pager" }, prev, where, next));
  go(0);
};

// The four verification buttons of one violation; a click POSTs the state (token required).
DC.verifyCell = function (v) {
  var cell = DC.el("td", { class: "verification" });
  var label = DC.el("span", { class: "state state-" + v.verificationState }, v.verificationState || "UNKNOWN");
  var buttons = DC.el("div", { class: "verify" });
  DC.STATES.forEach(function (s) {
    var b = DC.el("button", { type: "button", "data-state": s, "data-violation": v.violationId,
      class: s === v.verificationState ? "chosen" : "" }, s.replace("_", " ").toLowerCase());
    buttons.appendChild(b);
  });
  buttons.addEventListener("click", function (ev) {
    var b = ev.target.closest("button[data-state]");
    if (!b) return;
    var state = b.getAttribute("data-state");
    if (!DC.token()) { DC.show("Changes need the bearer token: type it in the Token box first."); return; }
    DC.api("POST", "/violations/verification-state/" + encodeURIComponent(v.violationId), {},
      { verificationState: state }).then(function () {
      label.textContent = state;
      label.className = "state state-" + state;
      buttons.querySelectorAll("button").forEach(function (x) {
        x.className = x === b ? "chosen" : "";
      });
      v.verificationState = state;
      DC.show("Violation " + v.violationId + " marked " + state + ".", true);
    }, function (err) { DC.show(err.message); });
  });
  cell.appendChild(label);
  cell.appendChild(buttons);
  return cell;
};

DC.pages.alarms = function (view) {
  view.appendChild(DC.el("h1", {}, "Active alarms"));
  var box = DC.el("div", { id: "alarms" });
  view.appendChild(box);
  var tableBox = DC.el("div", {});
  DC.pager(box, function (token) {
    return DC.api("GET", "/active-violations", { maxResults: DC.PAGE_SIZE, nextToken: token }).then(function (r) {
      var list = (r.activeViolations || []).slice().sort(function (a, b) {
        return (b.violationStartTime || 0) - (a.violationStartTime || 0);
      });
      var rows = list.map(function (v) {
        var behavior = v.behavior || {};
        return DC.el("tr", { "data-violation": v.violationId },
          DC.el("td", {}, DC.profileLink(v.securityProfileName || "")),
          DC.el("td", {}, behavior.name || ""),
          DC.el("td", {}, DC.thingLink(v.thingName || "")),
          DC.el("td", { class: "mono" }, DC.time(v.violationStartTime)),
          DC.el("td", { class: "value" }, DC.value(v.lastViolationValue)),
          DC.verifyCell(v));
      });
      tableBox.replaceChildren(DC.table(["Profile", "Behavior", "Thing", "Since", "Value", "Verification"],
        rows, "No active alarm."));
      return r.nextToken;
    });
  });
  box.appendChild(tableBox);
};

DC.route = function () {
  var hash = location.hash.replace(/^#\/?/, "") || "alarms";
  var parts = hash.split("?")[0].split("/");
  var name = parts[0], arg = parts.length > 1 ? decodeURIComponent(parts.slice(1).join("/")) : "";
  var page = DC.pages[name] || DC.pages.alarms;
  document.querySelectorAll("header nav a").forEach(function (a) {
    var p = a.getAttribute("data-page");
    a.className = p === name || (p === "things" && name === "thing") || (p === "profiles" && name === "profile") ? "current" : "";
  });
  DC.show("");
  var view = document.getElementById("view");
  view.replaceChildren();
  view.setAttribute("data-page", name);
  try { page(view, arg); } catch (e) { DC.show("This page failed: " + e.message); }
};

DC.start = function () {
  var input = document.getElementById("token");
  var state = document.getElementById("token-state");
  function mark() { state.textContent = DC.token() ? "token kept" : ""; }
  document.getElementById("token-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    try { sessionStorage.setItem(DC.TOKEN_KEY, input.value.trim()); } catch (e) { DC.show("sessionStorage is unavailable"); }
    input.value = "";
    mark();
  });
  document.getElementById("token-forget").addEventListener("click", function () {
    try { sessionStorage.removeItem(DC.TOKEN_KEY); } catch (e) { /* nothing kept */ }
    mark();
  });
  mark();
  window.addEventListener("hashchange", DC.route);
  DC.route();
};

document.addEventListener("DOMContentLoaded", function () { DC.start(); });
