// detect-fleet console: one metric's chart as inline SVG — the datapoints over a time range, the
// behaviors' thresholds as dashed lines and the alarm periods as shaded bands.
"use strict";

// A datapoint's value as one number: count/number as is, a set (ports, cidrs...) by its size.
DC.number = function (v) {
  if (!v || typeof v !== "object") return typeof v === "number" ? v : null;
  if (typeof v.count === "number") return v.count;
  if (typeof v.number === "number") return v.number;
  var keys = ["ports", "cidrs", "numbers", "strings"];
  for (var i = 0; i < keys.length; i++) if (Array.isArray(v[keys[i]])) return v[keys[i]].length;
  return null;
};

// 1234567 → "1.2M", 4600 → "4.6k", 2.156 → "2.16".
DC.short = function (v) {
  var a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (a >= 1e3) return (v / 1e3).toFixed(1) + "k";
  return String(Math.round(v * 100) / 100);
};

DC.svg = function (tag, attrs) {
  var e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
  return e;
};

// opts: {points: [[secs, value]], start, end, thresholds: [{value, label}], alarms: [[from, to]],
// title}. The y range covers the points and the thresholds.
DC.chart = function (opts) {
  var W = 900, H = 220, L = 56, R = 12, T = 12, B = 28;
  var svg = DC.svg("svg", { class: "chart", viewBox: "0 0 " + W + " " + H, role: "img",
    "aria-label": opts.title || "metric chart" });
  var start = opts.start, end = Math.max(opts.end, opts.start + 1);
  var values = opts.points.map(function (p) { return p[1]; })
    .concat(opts.thresholds.map(function (t) { return t.value; }));
  var lo = Math.min(0, Math.min.apply(null, values.length ? values : [0]));
  var hi = Math.max.apply(null, values.length ? values : [1]);
  if (hi <= lo) hi = lo + 1;
  hi += (hi - lo) * 0.08;
  function x(t) { return L + ((t - start) / (end - start)) * (W - L - R); }
  function y(v) { return H - B - ((v - lo) / (hi - lo)) * (H - T - B); }
  opts.alarms.forEach(function (a) {
    var x0 = x(Math.max(a[0], start)), x1 = x(Math.min(a[1], end));
    if (x1 < x0) return;
    svg.appendChild(DC.svg("rect", { class: "alarm-period", x: x0, y: T, width: Math.max(x1 - x0, 2), height: H - T - B }));
  });
  for (var i = 0; i <= 4; i++) {
    var v = lo + ((hi - lo) * i) / 4, yy = y(v);
    svg.appendChild(DC.svg("line", { class: "grid", x1: L, x2: W - R, y1: yy, y2: yy }));
    var label = DC.svg("text", { x: L - 6, y: yy + 4, "text-anchor": "end" });
    label.textContent = DC.short(v);
    svg.appendChild(label);
  }
  var span = end - start, steps = [60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 2 * 86400, 7 * 86400];
  var step = steps.find(function (s) { return span / s <= 8; }) || 30 * 86400;
  var daily = step >= 86400;
  for (var t = Math.ceil(start / step) * step; t <= end; t += step) {
    var tick = DC.svg("text", { x: x(t), y: H - 8, "text-anchor": "middle" });
    tick.textContent = new Date(t * 1000).toISOString().slice(daily ? 5 : 11, daily ? 10 : 16);
    svg.appendChild(tick);
  }
  svg.appendChild(DC.svg("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
  svg.appendChild(DC.svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
  if (opts.points.length) {
    var d = opts.points.map(function (p) { return x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1); }).join(" ");
    svg.appendChild(DC.svg("polyline", { class: "series", points: d }));
    if (opts.points.length < 60) {
      opts.points.forEach(function (p) { svg.appendChild(DC.svg("circle", { class: "point", cx: x(p[0]), cy: y(p[1]), r: 2.5 })); });
    }
  }
  opts.thresholds.forEach(function (th) {
    var yy = y(th.value);
    svg.appendChild(DC.svg("line", { class: "threshold", x1: L, x2: W - R, y1: yy, y2: yy, "data-value": th.value }));
    var label = DC.svg("text", { class: "threshold-label", x: W - R - 4, y: yy - 4, "text-anchor": "end" });
    label.textContent = th.label;
    svg.appendChild(label);
  });
  return svg;
};

DC.legend = function () {
  return DC.el("div", { class: "legend" },
    DC.el("span", { class: "swatch series" }), "datapoints",
    DC.el("span", { class: "swatch threshold" }), "threshold",
    DC.el("span", { class: "swatch alarm" }), "in alarm");
};
