// The HTML report: one file with everything inlined (Chart.js from Debian's libjs-chart.js, the
// data as JSON), so it opens offline, can be mailed, and renders the same years later.
#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <ardkit/error.hpp>
#include <ardkit/text.hpp>

#include "cli_common.hpp"
#include "report.hpp"

namespace ardkit::cli {

namespace {

// Where Debian's libjs-chart.js puts the UMD build; ARDKIT_CHART_JS overrides it.
fs::path chart_js_path() {
  if (const char* env = std::getenv("ARDKIT_CHART_JS"))
    return env;
  return "/usr/share/javascript/chart.js/chart.min.js";
}

// JSON inside <script>: "</" would end the element early.
std::string script_safe(std::string json) {
  for (size_t p = 0; (p = json.find("</", p)) != std::string::npos; p += 3)
    json.replace(p, 2, "<\\/");
  return json;
}

// Leaves of a resolved configuration as dotted keys.
void flatten(const nlohmann::ordered_json& j, const std::string& prefix,
             std::map<std::string, std::string>& out) {
  if (j.is_object()) {
    for (const auto& [k, v] : j.items())
      flatten(v, prefix.empty() ? k : prefix + "." + k, out);
  } else if (j.is_array() && !j.empty() && j.front().is_object()) {
    for (size_t i = 0; i < j.size(); ++i)
      flatten(j[i], prefix + "." + std::to_string(i), out);
  } else {
    out[prefix] = j.dump();
  }
}

const char* kPage = R"HTML(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>ardkit report</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; padding: 0 16px; max-width: 1180px; color: #1d2433; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 32px; border-bottom: 1px solid #d5dae3; }
table { border-collapse: collapse; margin: 8px 0; } td, th { padding: 3px 10px; border-bottom: 1px solid #e6e9ef; }
th { text-align: left; background: #f3f5f9; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 18px; }
.chart { height: 330px; } .note { color: #5b6578; } #errors { color: #b00020; }
.heat td.num { color: #111; }
</style>
<script>window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message)));</script>
<script>@CHARTJS@</script>
</head><body>
<h1>ardkit report</h1>
<p class="note">@SUMMARY@</p>
<pre id="errors"></pre>
<pre id="legend-colours" hidden></pre>
<h2>Comparison</h2>
<p class="note">Accuracy (%) on the test points; mean ± sample standard deviation over the n runs of each row.</p>
<table id="comparison"></table>
<h2>Clean against robust accuracy</h2>
<div class="charts"><div class="chart"><canvas id="scatter"></canvas></div></div>
<h2>Ablation heat map</h2>
<div id="heatmap"></div>
<h2>Robust accuracy against eps</h2>
<div id="eps-section" class="charts"></div>
<h2>Training curves</h2>
<div id="curves" class="charts"></div>
<h2>Configuration differences</h2>
<p class="note">Keys whose values differ between the runs in this report.</p>
<div id="diffs"></div>
<script id="data" type="application/json">@DATA@</script>
<script>
"use strict";
const data = JSON.parse(document.getElementById("data").textContent);
const report = data.report;
Chart.defaults.animation = false;
Chart.defaults.responsive = true;
Chart.defaults.maintainAspectRatio = false;
const palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
                 "#7f7f7f", "#bcbd22", "#17becf"];
// One colour per value of the colour key (the first grouping key that is not an eps axis), the
// same in every chart: a method keeps its colour from the scatter to the eps lines and the curves.
const isEps = k => /(^|\.)eps$/.test(k);
const colourKey = report.group_by.find(k => !isEps(k)) || report.group_by[0];
const colours = new Map();
const colourOf = value => {
  const v = value === undefined ? "all" : String(value);
  if (!colours.has(v)) colours.set(v, palette[colours.size % palette.length]);
  return colours.get(v);
};
for (const g of report.groups) colourOf(colourKey ? g.keys[colourKey] : "runs");
const runColour = r => colourOf(colourKey && r ? r.coordinates[colourKey] : "runs");
const runsById = new Map(report.runs.map(r => [r.run_id, r]));
const fmt = (s, n) => s === undefined ? "-" : (n > 1 ? s.mean.toFixed(2) + " ± " + s.std.toFixed(2) : s.mean.toFixed(2));
const el = (tag, attrs, text) => { const e = document.createElement(tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]); if (text !== undefined) e.textContent = text; return e; };
const charts = [];
function chart(parent, config, title) {
  const box = el("div", {class: "chart"}); const canvas = el("canvas"); box.appendChild(canvas);
  parent.appendChild(box);
  config.options = Object.assign({plugins: {title: {display: !!title, text: title}}}, config.options || {});
  charts.push(new Chart(canvas, config));
}
const groupLabel = g => report.group_by.map(k => g.keys[k]).join(" ") || "all";

// The comparison table, straight from the grouped numbers.
(function () {
  const t = document.getElementById("comparison");
  const head = t.insertRow();
  for (const h of [...report.group_by, "checkpoint", "n", ...report.metrics.map(m => m === "worst_case" ? "worst" : m)])
    head.appendChild(el("th", {}, h));
  for (const g of report.groups) {
    const r = t.insertRow();
    for (const k of report.group_by) r.appendChild(el("td", {}, g.keys[k]));
    r.appendChild(el("td", {}, g.checkpoint));
    r.appendChild(el("td", {class: "num"}, String(g.n)));
    for (const m of report.metrics)
      r.appendChild(el("td", {class: "num", "data-metric": m}, fmt(g.metrics[m], g.n)));
  }
})();

// Clean against worst-case accuracy, one series per value of the colour key.
(function () {
  const robust = report.metrics.includes("worst_case") ? "worst_case" : report.metrics[report.metrics.length - 1];
  const series = new Map();
  for (const g of report.groups) {
    if (g.checkpoint !== report.groups[0].checkpoint) continue;
    const key = colourKey ? g.keys[colourKey] : "runs";
    if (!series.has(key)) series.set(key, []);
    series.get(key).push({x: g.metrics.clean.mean, y: (g.metrics[robust] || g.metrics.clean).mean, label: groupLabel(g)});
  }
  const datasets = [...series].map(([k, pts]) => ({label: k, data: pts, backgroundColor: colourOf(k), pointRadius: 5}));
  charts.push(new Chart(document.getElementById("scatter"), {type: "scatter", data: {datasets},
    options: {plugins: {title: {display: true, text: report.groups[0].checkpoint + " checkpoint"},
      tooltip: {callbacks: {label: c => c.raw.label + ": " + c.raw.x.toFixed(2) + ", " + c.raw.y.toFixed(2)}}},
      scales: {x: {title: {display: true, text: "clean accuracy (%)"}}, y: {title: {display: true, text: robust + " accuracy (%)"}}}}}));
})();

// Robust accuracy against eps: along an eps axis of the grid, and for evaluations at several radii.
(function () {
  const parent = document.getElementById("eps-section");
  // Several eps keys usually move together (the training attack's and the evaluation's): one
  // chart along the first, a line for each value of the keys that are not eps.
  const epsKeys = report.group_by.filter(isEps).slice(0, 1);
  let drawn = 0;
  for (const ek of epsKeys) {
    const rest = report.group_by.filter(k => !isEps(k));
    const lines = new Map();
    for (const g of report.groups) {
      if (g.checkpoint !== report.groups[0].checkpoint) continue;
      const name = rest.map(k => g.keys[k]).join(" ") || "all";
      if (!lines.has(name)) lines.set(name, {colour: colourOf(colourKey === ek ? "all" : g.keys[colourKey]), pts: []});
      const m = g.metrics.worst_case || g.metrics.clean;
      lines.get(name).pts.push({x: parseFloat(g.keys[ek]), y: m.mean});
    }
    const datasets = [...lines].map(([k, l]) => ({label: k, data: l.pts.sort((a, b) => a.x - b.x),
      borderColor: l.colour, backgroundColor: l.colour, showLine: true}));
    chart(parent, {type: "scatter", data: {datasets}, options: {scales: {x: {title: {display: true, text: ek}},
      y: {title: {display: true, text: "worst-case accuracy (%)"}}}}}, "worst case against " + ek);
    drawn++;
  }
  // Per-attack radii of single evaluations (ardkit eval --eps a,b,c).
  const lines = new Map();
  for (const r of report.runs) {
    const byEps = new Map();
    for (const a in r.attacks) { const e = (r.threats[a] || {}).eps; if (e === undefined) continue;
      byEps.set(e, Math.min(byEps.has(e) ? byEps.get(e) : 101, r.attacks[a])); }
    if (byEps.size > 1) lines.set(r.name + " (" + r.checkpoint + ")", {colour: runColour(r),
      pts: [...byEps].map(([x, y]) => ({x, y})).sort((a, b) => a.x - b.x)});
  }
  if (lines.size) {
    chart(parent, {type: "scatter", data: {datasets: [...lines].map(([k, l]) => ({label: k, data: l.pts,
      borderColor: l.colour, backgroundColor: l.colour, showLine: true}))},
      options: {scales: {x: {title: {display: true, text: "eps"}}, y: {title: {display: true, text: "accuracy (%), worst attack"}}}}},
      "evaluated at several radii");
    drawn++;
  }
  if (!drawn) parent.appendChild(el("p", {class: "note"}, "No eps axis and no evaluation at several radii in these runs."));
})();

// Training curves per run: each loss term, the learning rate, validation accuracy.
(function () {
  const parent = document.getElementById("curves");
  const runs = Object.entries(data.curves).filter(([, rows]) => rows.length);
  if (!runs.length) { parent.appendChild(el("p", {class: "note"}, "No training metrics.")); return; }
  const keys = new Set(); for (const [, rows] of runs) for (const r of rows) for (const k in r) if (k !== "epoch") keys.add(k);
  for (const key of [...keys].sort()) {
    const datasets = runs.filter(([, rows]) => rows.some(r => key in r)).map(([id, rows]) => ({label: data.labels[id] || id,
      data: rows.filter(r => key in r).map(r => ({x: r.epoch, y: r[key]})), borderColor: runColour(runsById.get(id)),
      backgroundColor: runColour(runsById.get(id)), showLine: true}));
    chart(parent, {type: "scatter", data: {datasets}, options: {plugins: {legend: {display: datasets.length <= 12}},
      scales: {x: {title: {display: true, text: "epoch"}}, y: {title: {display: true, text: key}}}}}, key);
  }
})();

// Heat map of worst-case accuracy over two axes (means over everything else).
(function () {
  const parent = document.getElementById("heatmap");
  const [a, b] = data.heatmap;
  if (!a || !b) { parent.appendChild(el("p", {class: "note"}, "Needs two grouping keys (--by, --heatmap).")); return; }
  const cell = new Map(), xs = [], ys = [];
  for (const r of report.runs) {
    if (r.checkpoint !== report.runs[0].checkpoint) continue;
    const x = r.coordinates[a], y = r.coordinates[b];
    if (x === undefined || y === undefined) continue;
    if (!xs.includes(x)) xs.push(x); if (!ys.includes(y)) ys.push(y);
    const k = x + "\u001f" + y; if (!cell.has(k)) cell.set(k, []);
    cell.get(k).push(r.worst_case !== undefined ? r.worst_case : r.clean);
  }
  const means = [...cell.values()].map(v => v.reduce((s, x) => s + x, 0) / v.length);
  const lo = Math.min(...means), hi = Math.max(...means);
  const t = el("table", {class: "heat", id: "heatmap-table"});
  const head = t.insertRow(); head.appendChild(el("th", {}, a + " \\ " + b));
  for (const y of ys) head.appendChild(el("th", {}, y));
  for (const x of xs) {
    const r = t.insertRow(); r.appendChild(el("th", {}, x));
    for (const y of ys) {
      const v = cell.get(x + "\u001f" + y);
      const td = el("td", {class: "num"}, v ? (v.reduce((s, z) => s + z, 0) / v.length).toFixed(2) : "-");
      if (v) { const m = v.reduce((s, z) => s + z, 0) / v.length, f = hi > lo ? (m - lo) / (hi - lo) : 0.5;
        td.style.background = "hsl(" + Math.round(10 + 110 * f) + ", 70%, " + Math.round(82 - 22 * f) + "%)"; }
      r.appendChild(td);
    }
  }
  parent.appendChild(el("p", {class: "note"}, "worst-case accuracy (%), " + report.runs[0].checkpoint + " checkpoint, mean over the other keys"));
  parent.appendChild(t);
})();

// Configuration differences between the runs.
(function () {
  const parent = document.getElementById("diffs");
  const ids = Object.keys(data.diffs.values);
  if (!data.diffs.keys.length) { parent.appendChild(el("p", {class: "note"}, "All runs share one configuration.")); return; }
  const t = el("table"); const head = t.insertRow(); head.appendChild(el("th", {}, "run"));
  for (const k of data.diffs.keys) head.appendChild(el("th", {}, k));
  for (const id of ids) { const r = t.insertRow(); r.appendChild(el("td", {}, id));
    for (const k of data.diffs.keys) r.appendChild(el("td", {}, data.diffs.values[id][k] === undefined ? "-" : data.diffs.values[id][k])); }
  parent.appendChild(t);
})();

// For tests and for anyone scripting the page: how many charts drew something.
let painted = 0;
for (const c of charts) {
  const ctx = c.canvas.getContext("2d"), px = ctx.getImageData(0, 0, c.canvas.width, c.canvas.height).data;
  let inked = 0; for (let i = 3; i < px.length; i += 4 * 7) if (px[i] > 0) inked++;
  if (inked > 50) painted++;
}
document.body.dataset.charts = String(charts.length);
// Each chart's legend with its colours, for tests and scripts: {title: {label: colour}}.
const legend = {};
for (const c of charts) {
  const title = c.options.plugins.title.text || c.canvas.id;
  legend[title] = Object.fromEntries(c.data.datasets.map(d => [d.label, d.borderColor || d.backgroundColor]));
}
document.getElementById("legend-colours").textContent = JSON.stringify(legend);
document.body.dataset.painted = String(painted);
document.getElementById("errors").textContent = window.__errors.join("\n");
document.body.dataset.errors = String(window.__errors.length);
document.body.dataset.ready = "1";
</script>
</body></html>
)HTML";

void replace_once(std::string& text, const std::string& marker, const std::string& value) {
  const auto p = text.find(marker);
  text.replace(p, marker.size(), value);
}

}  // namespace

std::string report_html(const Report& report, const std::vector<std::string>& heatmap_keys) {
  const fs::path chart = chart_js_path();
  std::error_code ec;
  if (!fs::is_regular_file(chart, ec))
    throw_runtime_error(
        fmt::format("report --html: Chart.js not found at {}; install Debian's "
                    "libjs-chart.js (or set ARDKIT_CHART_JS to chart.min.js)",
                    chart.string()));
  nlohmann::ordered_json data;
  data["report"] = report.to_json();
  // Heat map axes: as asked, else the first two grouping keys.
  std::vector<std::string> heat = heatmap_keys;
  for (const auto& k : report.group_by)
    if (heat.size() < 2 && std::find(heat.begin(), heat.end(), k) == heat.end())
      heat.push_back(k);
  data["heatmap"] = heat;
  // Training curves and configuration differences, once per run.
  data["curves"] = nlohmann::ordered_json::object();
  data["labels"] = nlohmann::ordered_json::object();
  std::map<std::string, std::map<std::string, std::string>> configs;
  for (const auto& e : report.entries) {
    if (e.folder.empty() || data["curves"].contains(e.run_id))
      continue;
    data["curves"][e.run_id] = e.epochs ? *e.epochs : nlohmann::ordered_json::array();
    std::vector<std::string> label;
    for (const auto& [k, v] : e.coordinates)
      label.push_back(k == "experiment" || k == "name" ? v : k + "=" + v);
    data["labels"][e.run_id] = join(label, " ");
    if (e.config)
      flatten(*e.config, "", configs[e.run_id]);
  }
  std::set<std::string> keys;
  for (const auto& [id, c] : configs)
    for (const auto& [k, v] : c)
      keys.insert(k);
  std::vector<std::string> differing;
  for (const auto& k : keys) {
    std::set<std::string> values;
    for (const auto& [id, c] : configs)
      values.insert(c.count(k) ? c.at(k) : "\x1f");
    if (values.size() > 1)
      differing.push_back(k);
  }
  data["diffs"]["keys"] = differing;
  data["diffs"]["values"] = nlohmann::ordered_json::object();
  for (const auto& [id, c] : configs) {
    auto& row = data["diffs"]["values"][id] = nlohmann::ordered_json::object();
    for (const auto& k : differing)
      if (c.count(k))
        row[k] = c.at(k);
  }
  std::string page = kPage;
  replace_once(
      page, "@SUMMARY@",
      fmt::format("{} evaluations of {} runs in {} rows, grouped by {}.", report.entries.size(),
                  configs.size(), report.groups.size(),
                  report.group_by.empty() ? std::string("nothing") : join(report.group_by, ", ")));
  replace_once(page, "@DATA@", script_safe(data.dump()));
  replace_once(page, "@CHARTJS@", script_safe(read_text(chart)));
  return page;
}

}  // namespace ardkit::cli
