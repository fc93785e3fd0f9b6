// The statistics page: a few numbers and SVG charts drawn from /api/v1/stats.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const COLORS = { succeeded: "#2f7d32", failed: "#c62828", hit: "#1565c0", joined: "#7e57c2", miss: "#ef6c00" };

function svg(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function empty(container, message) {
  container.replaceChildren(make("p", message, { class: "note" }));
}

// Stacked bars, one per day; series: [[key, label]].
function dayChart(container, days, series) {
  const width = 900, height = 200, left = 36, bottom = 28, top = 10;
  const max = Math.max(1, ...days.map((day) => series.reduce((sum, [key]) => sum + day[key], 0)));
  const plot = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "days" });
  const step = (width - left) / days.length;
  const scale = (height - bottom - top) / max;
  for (const tick of new Set([0, Math.round(max / 2), max])) {
    const y = height - bottom - tick * scale;
    plot.append(svg("line", { x1: left, x2: width, y1: y, y2: y, class: "grid" }));
    plot.append(svg("text", { x: left - 4, y: y + 4, "text-anchor": "end" }, tick));
  }
  days.forEach((day, index) => {
    let y = height - bottom;
    for (const [key, label] of series) {
      const h = day[key] * scale;
      if (!h) continue;
      y -= h;
      const bar = svg("rect", { x: left + index * step + 1, y, width: step - 2, height: h, fill: COLORS[key] });
      bar.append(svg("title", {}, `${day.date}: ${day[key]} ${label}`));
      plot.append(bar);
    }
    const last = index === days.length - 1;
    if (last || (index % 5 === 0 && index < days.length - 3)) {
      const x = last ? width : left + index * step + step / 2;
      plot.append(svg("text", { x, y: height - 8, "text-anchor": last ? "end" : "middle" }, day.date.slice(5)));
    }
  });
  container.replaceChildren(plot, legend(series));
}

function legend(series) {
  const list = make("ul", null, { class: "legend" });
  for (const [key, label] of series) {
    const item = make("li", label);
    item.prepend(make("i", null, { style: `background:${COLORS[key]}` }));
    list.append(item);
  }
  return list;
}

// Horizontal bars for [{name, count}].
function barList(container, entries, color) {
  if (!entries.length) return empty(container, "nothing counted yet");
  const max = Math.max(...entries.map((entry) => entry.count));
  const list = make("ul", null, { class: "bars" });
  for (const entry of entries) {
    const item = make("li");
    const bar = make("span", null, { class: "fill", style: `width:${(100 * entry.count) / max}%;background:${color}` });
    item.append(make("span", entry.name, { class: "label" }), make("span", entry.count, { class: "count" }), bar);
    list.append(item);
  }
  container.replaceChildren(list);
}

// A ring of how requests were answered, with the hit ratio in the middle.
function cacheRing(container, requests) {
  const parts = [["hit", "from cache"], ["joined", "joined a build"], ["miss", "new build"]];
  const total = parts.reduce((sum, [key]) => sum + requests[key], 0);
  if (!total) return empty(container, "no build requests yet");
  const plot = svg("svg", { viewBox: "0 0 200 200", role: "img", class: "ring" });
  const radius = 70, circumference = 2 * Math.PI * radius;
  let offset = 0;
  for (const [key, label] of parts) {
    const length = (requests[key] / total) * circumference;
    const arc = svg("circle", {
      cx: 100, cy: 100, r: radius, fill: "none", stroke: COLORS[key], "stroke-width": 28,
      "stroke-dasharray": `${length} ${circumference - length}`, "stroke-dashoffset": -offset,
      transform: "rotate(-90 100 100)",
    });
    arc.append(svg("title", {}, `${requests[key]} ${label}`));
    plot.append(arc);
    offset += length;
  }
  const ratio = requests.hit_ratio === null ? "–" : `${Math.round(requests.hit_ratio * 100)}%`;
  plot.append(svg("text", { x: 100, y: 106, "text-anchor": "middle", class: "big" }, ratio));
  container.replaceChildren(plot, legend(parts));
}

async function loadStatistics() {
  const [summary, packages, targets] = await Promise.all([
    getJSON("/api/v1/stats"),
    getJSON("/api/v1/stats/popular_packages?limit=12"),
    getJSON("/api/v1/stats/popular_targets?limit=12"),
  ]);
  const { requests, builds, days } = summary.body;
  $("fig-requests").textContent = requests.total;
  $("fig-ratio").textContent = requests.hit_ratio === null ? "–" : `${Math.round(requests.hit_ratio * 100)}%`;
  $("fig-succeeded").textContent = builds.succeeded;
  $("fig-failed").textContent = builds.failed;
  const mean = builds.duration_seconds.mean;
  $("fig-duration").textContent = mean === null ? "–" : formatSeconds(mean);
  dayChart($("chart-days"), days, [["succeeded", "succeeded"], ["failed", "failed"]]);
  cacheRing($("chart-cache"), requests);
  const failures = Object.entries(builds.failures).map(([name, count]) => ({ name, count }));
  barList($("chart-failures"), failures.sort((a, b) => b.count - a.count), COLORS.failed);
  barList($("chart-packages"), packages.body, COLORS.hit);
  barList($("chart-targets"), targets.body, COLORS.succeeded);
}

loadStatistics();
