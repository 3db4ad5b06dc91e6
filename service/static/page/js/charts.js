// The result charts (uPlot): cloud probability per date with the threshold and the cloudy dates marked; a
// band's or index's mean with its p10-p90 band, every date or the clear dates only; the water area. Each
// chart's container carries data-points, the number of dates it plots (the cloud chart also data-cloudy, the
// number of dates it marks cloudy, the water chart data-measured, the number of dates with a water area).

/* global uPlot */

const charts = new Map();
const HEIGHT = 240;

function times(series) {
  return series.map((entry) => Date.parse(`${entry.date}T00:00:00Z`) / 1000);
}

// A date is clear as the API's analytics define it: no error, and a cloud fraction at most max_fraction (0.2
// when unset) where the per-pixel mask was computed, else an averaged pixel that is not cloudy.
export function isClear(entry, maxFraction) {
  if (entry.error || !entry.cloud) return false;
  if (entry.cloud.fraction !== undefined && entry.cloud.fraction !== null) {
    return entry.cloud.fraction <= (maxFraction ?? 0.2);
  }
  return entry.cloud.cloudy === false;
}

function draw(id, options, data, onPick) {
  const target = document.getElementById(id);
  const old = charts.get(id);
  if (old) old.destroy();
  target.replaceChildren();
  const width = Math.max(280, target.clientWidth || 600);
  const chart = new uPlot({
    width,
    height: HEIGHT,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    cursor: { points: { size: 8 } },
    ...options,
  }, data, target);
  target.dataset.points = String(chart.data[0].length);
  chart.over.addEventListener("click", () => {
    if (chart.cursor.idx !== null && chart.cursor.idx !== undefined) onPick(chart.cursor.idx);
  });
  charts.set(id, chart);
  return chart;
}

function pointsOnly(stroke) {
  return { stroke, width: 0, paths: () => null, points: { show: true, size: 11, stroke, fill: stroke } };
}

// Cloud probability (averaged pixel, else the mean per-pixel probability), the threshold, the cloudy dates and,
// with the per-pixel mask, the cloud fraction.
export function cloudChart(series, threshold, onPick) {
  const probability = series.map((e) => (e.cloud ? e.cloud.probability ?? e.cloud.probability_mean ?? null : null));
  const cloudy = series.map((e, i) => (e.cloud && e.cloud.cloudy === true ? probability[i] : null));
  const data = [times(series), probability, series.map(() => threshold), cloudy];
  const lines = [
    {},
    { label: "cloud probability", stroke: "#1f5fa8", width: 2, points: { show: true, size: 6 } },
    { label: `threshold ${threshold}`, stroke: "#777", dash: [6, 4], points: { show: false } },
    { label: "cloudy", ...pointsOnly("#c62828") },
  ];
  const fraction = series.map((e) => (e.cloud && e.cloud.fraction !== undefined ? e.cloud.fraction : null));
  if (fraction.some((v) => v !== null)) {
    data.push(fraction);
    lines.push({ label: "cloud fraction", stroke: "#7b3fa0", width: 1, points: { show: true, size: 5 } });
  }
  const chart = draw("cloud-chart", { series: lines, scales: { y: { range: [0, 1] } } }, data, onPick);
  document.getElementById("cloud-chart").dataset.cloudy = String(chart.data[3].filter((v) => v !== null).length);
  return chart;
}

// The variables a series can plot: its indices, then its bands.
export function variables(series) {
  const first = series.find((e) => e.indices || e.bands) || {};
  return [...Object.keys(first.indices || {}).map((n) => ["indices", n]),
    ...Object.keys(first.bands || {}).map((n) => ["bands", n])];
}

// The mean of `name` (under `kind`: indices or bands) with its p10-p90 band when both were asked for.
export function valueChart(series, kind, name, clearOnly, maxFraction, onPick) {
  const keep = series.map((e) => !clearOnly || isClear(e, maxFraction));
  const stat = (key) => series.map((e, i) => {
    const value = keep[i] && e[kind] && e[kind][name] ? e[kind][name][key] : null;
    return value === undefined ? null : value;
  });
  const data = [times(series)];
  const lines = [{}];
  const bands = [];
  const p10 = stat("p10");
  const p90 = stat("p90");
  if (p10.some((v) => v !== null) && p90.some((v) => v !== null)) {
    data.push(p90, p10);
    lines.push({ label: `${name} p90`, stroke: "rgba(46,125,50,0.5)", width: 1, points: { show: false } },
      { label: `${name} p10`, stroke: "rgba(46,125,50,0.5)", width: 1, points: { show: false } });
    bands.push({ series: [1, 2], fill: "rgba(46,125,50,0.15)" });
  }
  data.push(stat("mean"));
  lines.push({ label: `${name} mean`, stroke: "#2e7d32", width: 2, spanGaps: true, points: { show: true, size: 6 } });
  return draw("index-chart", { series: lines, bands }, data, onPick);
}

// Water area in hectares on the measured (OK) dates.
export function waterChart(series, onPick) {
  const area = series.map((e) => (e.water && e.water.status === "OK" && e.water.area_m2 !== null ? e.water.area_m2 / 1e4 : null));
  const lines = [{}, { label: "water area (ha)", stroke: "#0277bd", width: 2, spanGaps: true, points: { show: true, size: 6 } }];
  const chart = draw("water-chart", { series: lines }, [times(series), area], onPick);
  document.getElementById("water-chart").dataset.measured = String(area.filter((v) => v !== null).length);
  return chart;
}

export function removeChart(id) {
  const old = charts.get(id);
  if (old) old.destroy();
  charts.delete(id);
  document.getElementById(id).replaceChildren();
}

// Fit every chart to its container's width (after a resize).
export function resizeCharts() {
  for (const [id, chart] of charts) {
    const width = Math.max(280, document.getElementById(id).clientWidth || 600);
    chart.setSize({ width, height: HEIGHT });
  }
}
