// The query form: its controls are built from the API's own contract (/openapi.json: the band names, the
// defaults of every field) and this server's settings (/page/config.json: the built-in indices), and read
// back into a time-series request body.

import { byId, el } from "./dom.js";

let schema = null;

function requestSchema(spec) {
  return spec.components.schemas.TimeSeriesRequest.properties;
}

function waterSchema(props) {
  return props.water.oneOf.find((option) => option.type === "object").properties;
}

function choice(name, value, checked) {
  const id = `${name}-${value}`;
  return el("span", { class: "check" },
    el("input", { type: "checkbox", id, name, value, checked }),
    el("label", { for: id }, value));
}

function options(select, values, selected) {
  select.replaceChildren(...values.map((v) => el("option", { value: v, selected: String(v) === String(selected) }, v)));
}

function setNumber(input, property) {
  if (property.default !== undefined) input.value = String(property.default);
  if (property.minimum !== undefined) input.min = String(property.minimum);
  if (property.maximum !== undefined) input.max = String(property.maximum);
}

// Build the controls from the contract `spec` and the server `config`; set the time range to `range`.
export function buildForm(spec, config, range) {
  schema = requestSchema(spec);
  const bandNames = spec.components.schemas.BandName.enum;
  const bandDefault = new Set(schema.bands.default);
  byId("band-choices").replaceChildren(...bandNames.map((b) => choice("band", b, bandDefault.has(b))));
  const indexDefault = new Set(schema.indices.default);
  byId("index-choices").replaceChildren(...config.indices.map((i) => choice("index", i, indexDefault.has(i))));
  byId("statistics").value = schema.statistics.default.join(", ");
  options(byId("resolution"), schema.resolution.oneOf.find((o) => o.type === "integer").enum, schema.resolution.default);
  const cloud = schema.cloud.properties;
  options(byId("cloud-mode"), cloud.mode.enum, cloud.mode.default);
  setNumber(byId("cloud-threshold"), cloud.threshold);
  byId("cloud-mask").checked = Boolean(cloud.mask.default);
  const water = waterSchema(schema);
  options(byId("water-index"), config.indices.filter((i) => i !== "CLP" && i !== "CLM"), water.index.default);
  const method = byId("water-method");
  method.replaceChildren(el("option", { value: "" }, "Default (the API's)"),
    ...water.method.enum.map((m) => el("option", { value: m }, m)));
  setNumber(byId("water-threshold"), water.threshold);
  setNumber(byId("water-buffer"), water.buffer_m);
  if (range) {
    byId("time-from").value = range[0];
    byId("time-to").value = range[1];
  }
}

function checked(name) {
  return [...document.querySelectorAll(`input[name="${name}"]:checked`)].map((input) => input.value);
}

function optionalNumber(id) {
  const text = byId(id).value.trim();
  return text === "" ? null : Number(text);
}

// The request fields but geometry: time, bands, indices, statistics, resolution, cloud and water. Values the
// browser cannot read as numbers are sent as they were typed, so the API names them in its error.
export function readOptions() {
  const options = {
    time: { from: byId("time-from").value, to: byId("time-to").value },
    bands: checked("band"),
    indices: checked("index"),
    statistics: byId("statistics").value.split(",").map((s) => s.trim()).filter(Boolean),
    resolution: Number(byId("resolution").value),
  };
  const cloud = { mode: byId("cloud-mode").value, threshold: numberOrText("cloud-threshold"), mask: byId("cloud-mask").checked };
  const maxProbability = optionalNumber("cloud-max-probability");
  if (maxProbability !== null) cloud.max_probability = maxProbability;
  const maxFraction = optionalNumber("cloud-max-fraction");
  if (maxFraction !== null) cloud.max_fraction = maxFraction;
  options.cloud = cloud;
  if (byId("water").checked) {
    const water = { index: byId("water-index").value, threshold: numberOrText("water-threshold") };
    const method = byId("water-method").value;
    if (method) water.method = method;
    const buffer = optionalNumber("water-buffer");
    if (buffer !== null) water.buffer_m = buffer;
    options.water = water;
  }
  return options;
}

function numberOrText(id) {
  const text = byId(id).value.trim();
  const value = Number(text);
  return text !== "" && Number.isFinite(value) ? value : text;
}

// The request body of one polygon, as the exact text sent (the CSV download sends the same text).
export function requestBody(geometry) {
  const { time, ...rest } = readOptions();
  return JSON.stringify({ geometry, time, ...rest });
}

// The batch request body of a FeatureCollection: the form's time range, its other fields as options.
export function batchBody(collection) {
  const { time, ...options } = readOptions();
  return JSON.stringify({ polygons: collection, time, options });
}
