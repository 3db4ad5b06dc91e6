// A date's quicklook: its true colour over the polygon (with a margin), the polygon's outline and, when the
// archive has stored cloud layers, the cloud mask (CLM) over it; in the figure beside the results and on the
// map. Images are fetched with the page's token and shown from blob: URLs.

import { ApiError, getBlob } from "./api.js";
import { bboxParam, bounds, grow, imageSize } from "./geometry.js";
import { byId, say } from "./dom.js";
import { setClouds, setQuicklook } from "./map.js";

const SVG = "http://www.w3.org/2000/svg";
const TRUE_COLOUR = "B04,B03,B02";
let urls = [];

function renderUrl(date, params) {
  return `/api/v1/render/${encodeURIComponent(date)}?${new URLSearchParams(params)}`;
}

function mercatorY(lat) {
  return Math.log(Math.tan(Math.PI / 4 + (lat * Math.PI) / 360));
}

// The polygon's outline as SVG over an image of `box` `width` x `height` pixels (Web Mercator, as the image).
function outline(geometry, box, width, height) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("aria-hidden", "true");
  svg.classList.add("quicklook-outline");
  const top = mercatorY(box[3]);
  const bottom = mercatorY(box[1]);
  const polygons = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates;
  for (const polygon of polygons) {
    for (const ring of polygon) {
      const points = ring.map(([lon, lat]) => [((lon - box[0]) / (box[2] - box[0])) * width,
        ((top - mercatorY(lat)) / (top - bottom)) * height]);
      const line = document.createElementNS(SVG, "polygon");
      line.setAttribute("points", points.map((p) => p.map((v) => v.toFixed(2)).join(",")).join(" "));
      svg.append(line);
    }
  }
  return svg;
}

async function load(image, blob) {
  const url = URL.createObjectURL(blob);
  urls.push(url);
  image.src = url;
  await image.decode();
  return url;
}

// Show `entry`'s date over `geometry`; `maxPixels` bounds the image size.
export async function showQuicklook(entry, geometry, maxPixels, maxSide = 512) {
  for (const url of urls) URL.revokeObjectURL(url);
  urls = [];
  const figure = byId("quicklook");
  const image = byId("quicklook-image");
  const clouds = byId("quicklook-clouds");
  const message = byId("quicklook-message");
  const caption = byId("quicklook-caption");
  figure.hidden = false;
  clouds.hidden = true;
  clouds.removeAttribute("src");
  setClouds(null);
  say(message, "Loading…");
  caption.textContent = "";
  figure.querySelector(".quicklook-outline")?.remove();
  const box = grow(bounds(geometry), 0.25, 0.0005);
  const [width, height] = imageSize(box, 5, maxSide, maxPixels);
  const params = { bbox: bboxParam(box), bands: TRUE_COLOUR, width, height };
  const source = renderUrl(entry.date, params);
  Object.assign(image.dataset, { date: entry.date, bbox: params.bbox, bands: TRUE_COLOUR, source });
  image.alt = `True colour of ${entry.date} over the polygon`;
  image.width = width;
  image.height = height;
  const url = await load(image, await getBlob(source));
  setQuicklook(url, box);
  figure.querySelector(".quicklook-frame").append(outline(geometry, box, width, height));
  const probability = entry.cloud && entry.cloud.probability !== null && entry.cloud.probability !== undefined
    ? `, cloud probability ${entry.cloud.probability.toFixed(3)}` : "";
  caption.textContent = `${entry.date}: true colour (B04, B03, B02)${probability}; ${(entry.scenes || []).join(", ")}`;
  try {
    const mask = await getBlob(renderUrl(entry.date, { ...params, bands: "CLM" }));
    const maskUrl = await load(clouds, mask);
    clouds.alt = `Cloud mask of ${entry.date}`;
    clouds.hidden = false;
    setClouds(maskUrl, box);
    say(message, "Cloud mask (CLM) drawn in magenta.", "ok");
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    say(message, `Cloud mask: ${error.message}`, "warning");
  }
}
