// Batch jobs from the page: submit a FeatureCollection with the query form's options, poll the job's status
// route until it is DONE or FAILED, then offer its CSV and Parquet results.

import { ApiError, getBlob, getJson, postJson } from "./api.js";
import { batchBody } from "./form.js";
import { byId, saveBlob, say } from "./dom.js";

const POLL_MS = 500;
let links = null;

// The FeatureCollection of the chosen file, with properties.id taken from `idProperty` when one is given.
export function prepareCollection(text, idProperty) {
  const collection = JSON.parse(text);
  if (!collection || collection.type !== "FeatureCollection" || !Array.isArray(collection.features)) {
    throw new Error("the batch file is not a GeoJSON FeatureCollection");
  }
  if (idProperty) {
    collection.features = collection.features.map((feature, i) => {
      const props = feature.properties || {};
      if (!(idProperty in props)) throw new Error(`feature ${i} has no property ${JSON.stringify(idProperty)}`);
      return { ...feature, properties: { ...props, id: props[idProperty] } };
    });
  }
  return collection;
}

function progress(job) {
  const bar = byId("batch-progress");
  const { done, total } = job.progress;
  bar.max = total || 1;
  bar.value = total ? done : 0;
  const counts = total === null ? "planning" : `${done} of ${total} tasks`;
  say(byId("batch-status"), `Job ${job.id}: ${job.status}, ${counts}`, job.status === "FAILED" ? "error" : "");
}

async function poll(url) {
  for (;;) {
    const job = await getJson(url);
    progress(job);
    if (job.status === "DONE" || job.status === "FAILED") return job;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

export async function runBatch(file, idProperty) {
  const status = byId("batch-status");
  links = null;
  byId("batch-csv").disabled = true;
  byId("batch-parquet").disabled = true;
  if (!file) {
    say(status, "Choose a GeoJSON FeatureCollection first.", "error");
    return;
  }
  try {
    const collection = prepareCollection(await file.text(), idProperty);
    const { json } = await postJson("/api/v1/batch", batchBody(collection));
    progress(json);
    const job = await poll(json.links.self);
    if (job.status === "FAILED") {
      say(status, `Job ${job.id} FAILED: ${job.error}`, "error");
      return;
    }
    links = job.links;
    byId("batch-csv").disabled = false;
    byId("batch-parquet").disabled = false;
    say(status, `Job ${job.id}: DONE, ${job.rows} rows for ${job.polygons} polygons.`, "ok");
  } catch (error) {
    say(status, error instanceof ApiError ? `Batch refused: ${error.message}` : `Batch: ${error.message}`, "error");
  }
}

export async function downloadBatch(format) {
  if (!links || !links[format]) return;
  try {
    saveBlob(await getBlob(links[format]), `batch.${format}`);
  } catch (error) {
    say(byId("batch-status"), error.message, "error");
  }
}
