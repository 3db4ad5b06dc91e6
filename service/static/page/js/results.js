// The results of a query: messages (warnings, per-date errors), the summary, the charts and the table. Every
// value is written as text.

import { byId, clear, el, formatNumber } from "./dom.js";
import { cloudChart, removeChart, valueChart, variables, waterChart } from "./charts.js";

let current = null;

// The table's columns, as the CSV names them: what every date has, then the bands' and indices' statistics.
function columns(series) {
  const names = [];
  const add = (name) => {
    if (!names.includes(name)) names.push(name);
  };
  for (const entry of series) {
    for (const [name] of flatten(entry)) add(name);
  }
  const error = names.indexOf("error");
  if (error >= 0) names.push(names.splice(error, 1)[0]);
  return names;
}

function flatten(entry) {
  const row = [["date", entry.date]];
  const cloud = entry.cloud || {};
  if ("probability" in cloud) row.push(["cloud_probability", cloud.probability], ["cloudy", cloud.cloudy]);
  if ("fraction" in cloud) row.push(["cloud_fraction", cloud.fraction]);
  if (entry.pixels) row.push(["valid_pixels", entry.pixels.valid], ["nodata_pixels", entry.pixels.nodata]);
  if (entry.water) row.push(["water_status", entry.water.status], ["water_area_m2", entry.water.area_m2]);
  for (const kind of ["bands", "indices"]) {
    for (const [name, stats] of Object.entries(entry[kind] || {})) {
      for (const [stat, value] of Object.entries(stats)) row.push([`${name}_${stat}`, value]);
    }
  }
  if (entry.error) row.push(["error", entry.error]);
  return row;
}

function table(series, onPick) {
  const names = columns(series);
  const head = byId("series-table").tHead;
  const body = byId("series-table").tBodies[0];
  head.replaceChildren(el("tr", {}, ...names.map((n) => el("th", { scope: "col" }, n))));
  body.replaceChildren(...series.map((entry, i) => {
    const values = new Map(flatten(entry));
    const button = el("button", { type: "button", class: "date" }, entry.date);
    button.addEventListener("click", () => onPick(i));
    const cells = names.slice(1).map((n) => el("td", {}, formatNumber(values.get(n))));
    return el("tr", { class: entry.cloud && entry.cloud.cloudy ? "cloudy" : null }, el("th", { scope: "row" }, button), ...cells);
  }));
}

function messages(answer) {
  const list = byId("messages");
  clear(list);
  for (const warning of answer.warnings || []) list.append(el("li", { class: "warning" }, `Warning: ${warning}`));
  for (const entry of answer.series) {
    if (entry.error) list.append(el("li", { class: "error" }, `${entry.date}: ${entry.error}`));
  }
  if (answer.status === "PARTIAL") list.append(el("li", { class: "warning" }, "Some dates could not be answered (status PARTIAL)."));
}

function summary(answer) {
  const s = answer.summary;
  byId("summary").textContent = `${s.dates} dates from ${s.acquisitions} acquisitions; ${s.errors} with errors, `
    + `${s.dropped_cloudy} dropped as cloudy, ${s.dropped_empty} without valid pixels.`;
}

// Draw the index chart for the variable chosen in the form.
export function redrawValues() {
  if (!current) return;
  const select = byId("chart-variable");
  const [kind, name] = (select.value || "").split(":");
  if (!name) {
    removeChart("index-chart");
    byId("index-chart").dataset.points = "0";
    return;
  }
  byId("index-chart-title").textContent = name;
  valueChart(current.answer.series, kind, name, byId("chart-clear").checked, current.request.cloud?.max_fraction,
    current.onPick);
}

// Show `answer` (the API's JSON) to the request `request` (the body sent, parsed); `onPick(i)` shows date i.
export function showResults(answer, request, onPick) {
  current = { answer, request, onPick };
  byId("results").hidden = false;
  messages(answer);
  summary(answer);
  const select = byId("chart-variable");
  const choices = variables(answer.series);
  select.replaceChildren(...choices.map(([kind, name]) => el("option", { value: `${kind}:${name}` }, name)));
  cloudChart(answer.series, request.cloud.threshold, onPick);
  redrawValues();
  const water = answer.series.some((e) => e.water);
  byId("water-block").hidden = !water;
  if (water) waterChart(answer.series, onPick);
  else removeChart("water-chart");
  table(answer.series, onPick);
}
