// The web page: wires the map, the form, the results and the batch panel to this server's API.

import { ApiError, getBlob, getJson, hasToken, postJson, signIn, whenUnauthorized } from "./api.js";
import { downloadBatch, runBatch } from "./batch.js";
import { resizeCharts } from "./charts.js";
import { byId, el, saveBlob, say } from "./dom.js";
import { buildForm, requestBody } from "./form.js";
import { bboxParam, imageSize, readPolygons } from "./geometry.js";
import { createMap, refreshSize, setBase, setOsm, showPolygon, startDrawing } from "./map.js";
import { showQuicklook } from "./quicklook.js";
import { redrawValues, showResults } from "./results.js";

const state = { config: null, extent: null, geometry: null, body: null, answer: null, json: null, examples: [] };

function setGeometry(geometry, label) {
  state.geometry = geometry;
  showPolygon(geometry);
  say(byId("area-status"), geometry ? `Polygon: ${label}` : "No polygon: draw one, upload a file or pick a demo polygon.");
}

function describeArchive(collection) {
  const interval = collection.extent.temporal.interval[0] || [];
  const range = interval.length ? `, ${interval[0].slice(0, 10)} to ${interval[1].slice(0, 10)}` : "";
  byId("archive-info").textContent = `${collection.title}: ${collection.acquisitions} acquisitions${range}`;
  return interval.length ? [interval[0].slice(0, 10), interval[1].slice(0, 10)] : null;
}

// The base layer's dates, the least cloudy (then the latest) chosen.
function baseDates(dates) {
  const select = byId("base-date");
  select.append(...dates.map((d) => el("option", { value: d.date },
    d.cloud_cover === null ? d.date : `${d.date} (${Math.round(d.cloud_cover)} % cloud)`)));
  const known = dates.filter((d) => d.cloud_cover !== null);
  if (!known.length) return;
  const best = known.reduce((a, b) => (b.cloud_cover < a.cloud_cover || (b.cloud_cover === a.cloud_cover && b.date > a.date) ? b : a));
  select.value = best.date;
}

async function drawBase() {
  const date = byId("base-date").value;
  const status = byId("area-status");
  if (!date || !state.extent) {
    setBase(null);
    return;
  }
  const [width, height] = imageSize(state.extent, 10, 1024, state.config.max_pixels);
  const params = new URLSearchParams({ bbox: bboxParam(state.extent), width, height });
  try {
    const blob = await getBlob(`/api/v1/render/${encodeURIComponent(date)}?${params}`);
    setBase(URL.createObjectURL(blob), state.extent);
  } catch (error) {
    setBase(null);
    if (error instanceof ApiError) say(status, `Archive imagery: ${error.message}`, "warning");
    else throw error;
  }
}

async function loadExamples() {
  const collection = await getJson("/page/polygons.geojson");
  state.examples = readPolygons(JSON.stringify(collection));
  byId("demo-polygon").append(...state.examples.map((p, i) => el("option", { value: String(i) }, p.name)));
}

async function upload(file) {
  if (!file) return;
  try {
    const polygons = readPolygons(await file.text(), file.name);
    const note = polygons.length > 1 ? ` (the first of ${polygons.length} polygons; the batch panel takes them all)` : "";
    setGeometry(polygons[0].geometry, `${polygons[0].name || file.name}${note}`);
  } catch (error) {
    say(byId("area-status"), `Cannot use ${file.name}: ${error.message}`, "error");
  }
}

function pickDate(index) {
  const entry = state.answer.series[index];
  if (!entry || entry.error) return;
  showQuicklook(entry, state.geometry, state.config.max_pixels).catch((error) => {
    say(byId("quicklook-message"), error.message, "error");
  });
}

async function runQuery(event) {
  event.preventDefault();
  const status = byId("query-status");
  if (!state.geometry) {
    say(status, "No polygon yet: draw one, upload a file or pick a demo polygon.", "error");
    return;
  }
  const body = requestBody(state.geometry);
  say(status, "Running the query…");
  byId("run").disabled = true;
  try {
    const { bytes, json } = await postJson("/api/v1/timeseries", body);
    state.body = body;
    state.answer = json;
    state.json = bytes;
    showResults(json, JSON.parse(body), pickDate);
    say(status, `${json.series.length} dates (status ${json.status}).`, "ok");
  } catch (error) {
    say(status, error instanceof ApiError ? `The API refused the query: ${error.message}` : error.message, "error");
  } finally {
    byId("run").disabled = false;
  }
}

async function downloadCsv() {
  if (!state.body) return;
  try {
    const blob = await getBlob("/api/v1/timeseries?format=csv", { method: "POST", body: state.body,
      headers: { "Content-Type": "application/json" } });
    saveBlob(blob, "timeseries.csv");
  } catch (error) {
    say(byId("query-status"), error.message, "error");
  }
}

function downloadJson() {
  if (state.json) saveBlob(new Blob([state.json], { type: "application/json" }), "timeseries.json");
}

function wireSignIn(auth) {
  const section = byId("signin");
  section.hidden = !auth;
  whenUnauthorized((error) => {
    section.hidden = false;
    say(byId("signin-message"), error.message, "error");
  });
  byId("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await signIn(byId("client-id").value, byId("client-secret").value);
      say(byId("signin-message"), "Signed in.", "ok");
      drawBase();
    } catch (error) {
      say(byId("signin-message"), error.message, "error");
    }
  });
}

function wire() {
  byId("draw").addEventListener("click", () => {
    say(byId("area-status"), "Click the corners on the map; click the first corner again to close the polygon.");
    startDrawing((geometry) => setGeometry(geometry, "drawn on the map"));
  });
  byId("clear-polygon").addEventListener("click", () => setGeometry(null));
  byId("upload").addEventListener("change", (event) => upload(event.target.files[0]));
  byId("demo-polygon").addEventListener("change", (event) => {
    const example = state.examples[Number(event.target.value)];
    if (event.target.value !== "" && example) setGeometry(example.geometry, `demo polygon ${example.name}`);
  });
  byId("osm").addEventListener("change", (event) => setOsm(event.target.checked, state.config.osm_tiles));
  byId("base-date").addEventListener("change", () => drawBase());
  byId("query-form").addEventListener("submit", runQuery);
  byId("chart-variable").addEventListener("change", redrawValues);
  byId("chart-clear").addEventListener("change", redrawValues);
  byId("download-csv").addEventListener("click", downloadCsv);
  byId("download-json").addEventListener("click", downloadJson);
  byId("batch-form").addEventListener("submit", (event) => {
    event.preventDefault();
    runBatch(byId("batch-file").files[0], byId("batch-id").value.trim());
  });
  byId("batch-csv").addEventListener("click", () => downloadBatch("csv"));
  byId("batch-parquet").addEventListener("click", () => downloadBatch("parquet"));
  window.addEventListener("resize", () => {
    refreshSize();
    resizeCharts();
  });
}

async function start() {
  const [config, spec, collections] = await Promise.all([getJson("/page/config.json"), getJson("/openapi.json"),
    getJson("/collections")]);
  state.config = config;
  const collection = collections.collections[0];
  const range = describeArchive(collection);
  const box = collection.extent.spatial.bbox[0];
  state.extent = box || null;
  buildForm(spec, config, range);
  createMap(state.extent);
  wireSignIn(config.auth);
  wire();
  setGeometry(null);
  baseDates(config.dates);
  await loadExamples();
  if (!config.auth || hasToken()) await drawBase();
  document.body.dataset.ready = "true";
}

start().catch((error) => {
  say(byId("archive-info"), `The page could not start: ${error.message}`, "error");
});
