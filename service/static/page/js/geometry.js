// Polygons the page works with: read from an uploaded GeoJSON or WKT file, their bounds, and the Web Mercator
// arithmetic used to size images. Coordinates are (lon, lat) in EPSG:4326, as the API reads them by default.

const EARTH_RADIUS = 6378137;

// The polygons of a file's text: [{geometry, name}], GeoJSON geometries of type Polygon or MultiPolygon.
export function readPolygons(text, filename = "") {
  const trimmed = text.trim();
  if (!trimmed) throw new Error(`${filename || "the file"} is empty; expected GeoJSON or WKT`);
  if (trimmed.startsWith("{")) return fromGeoJson(JSON.parse(trimmed));
  return [{ geometry: parseWkt(trimmed), name: filename }];
}

function fromGeoJson(data) {
  if (data.type === "FeatureCollection") {
    if (!Array.isArray(data.features) || data.features.length === 0) {
      throw new Error("the FeatureCollection has no features");
    }
    return data.features.map((feature, i) => fromFeature(feature, i));
  }
  if (data.type === "Feature") return [fromFeature(data, 0)];
  checkPolygon(data);
  return [{ geometry: data, name: "" }];
}

function fromFeature(feature, position) {
  if (!feature || feature.type !== "Feature") throw new Error(`feature ${position} is not a GeoJSON Feature`);
  checkPolygon(feature.geometry);
  const props = feature.properties || {};
  const name = props.name ?? props.id ?? feature.id ?? `feature ${position}`;
  return { geometry: feature.geometry, name: String(name) };
}

function checkPolygon(geometry) {
  if (!geometry || (geometry.type !== "Polygon" && geometry.type !== "MultiPolygon")) {
    const got = geometry && typeof geometry.type === "string" ? geometry.type : typeof geometry;
    throw new Error(`expected a Polygon or MultiPolygon, got ${got}`);
  }
}

// WKT POLYGON or MULTIPOLYGON (an EWKT "SRID=...;" prefix and Z/M coordinates are accepted; only x, y kept).
export function parseWkt(text) {
  let rest = text.replace(/^SRID=\d+;/i, "").trim();
  const head = /^(MULTIPOLYGON|POLYGON)\s*(ZM|Z|M)?\s*/i.exec(rest);
  if (!head) throw new Error(`not GeoJSON nor a WKT POLYGON or MULTIPOLYGON: starts with ${JSON.stringify(text.slice(0, 20))}`);
  rest = rest.slice(head[0].length);
  let pos = 0;
  const expect = (char) => {
    while (/\s/.test(rest[pos] || "")) pos += 1;
    if (rest[pos] !== char) throw new Error(`WKT: expected '${char}' at character ${head[0].length + pos}`);
    pos += 1;
  };
  const peek = () => {
    while (/\s/.test(rest[pos] || "")) pos += 1;
    return rest[pos];
  };
  const list = (item) => {
    expect("(");
    const items = [item()];
    while (peek() === ",") {
      pos += 1;
      items.push(item());
    }
    expect(")");
    return items;
  };
  const point = () => {
    const match = /^\s*([-+0-9.eE]+)\s+([-+0-9.eE]+)(\s+[-+0-9.eE]+)*/.exec(rest.slice(pos));
    if (!match) throw new Error(`WKT: expected a coordinate pair at character ${head[0].length + pos}`);
    pos += match[0].length;
    const xy = [Number(match[1]), Number(match[2])];
    if (!xy.every(Number.isFinite)) throw new Error(`WKT: not a number in ${JSON.stringify(match[0].trim())}`);
    return xy;
  };
  const ring = () => list(point);
  const polygon = () => list(ring);
  const multi = head[1].toUpperCase() === "MULTIPOLYGON";
  const coordinates = multi ? list(polygon) : polygon();
  if (peek() !== undefined) throw new Error(`WKT: unexpected text after the geometry at character ${head[0].length + pos}`);
  return { type: multi ? "MultiPolygon" : "Polygon", coordinates };
}

// [minLon, minLat, maxLon, maxLat] of a Polygon or MultiPolygon.
export function bounds(geometry) {
  const polygons = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates;
  const box = [Infinity, Infinity, -Infinity, -Infinity];
  for (const polygon of polygons) {
    for (const ring of polygon) {
      for (const [x, y] of ring) {
        box[0] = Math.min(box[0], x);
        box[1] = Math.min(box[1], y);
        box[2] = Math.max(box[2], x);
        box[3] = Math.max(box[3], y);
      }
    }
  }
  return box;
}

// The box grown by `share` of its size on each side (at least `minimum` degrees).
export function grow(box, share, minimum = 0) {
  const dx = Math.max((box[2] - box[0]) * share, minimum);
  const dy = Math.max((box[3] - box[1]) * share, minimum);
  return [box[0] - dx, box[1] - dy, box[2] + dx, box[3] + dy];
}

function mercator([lon, lat]) {
  const phi = (lat * Math.PI) / 180;
  return [(EARTH_RADIUS * lon * Math.PI) / 180, EARTH_RADIUS * Math.log(Math.tan(Math.PI / 4 + phi / 2))];
}

// Width and height in pixels of an image of `box` whose pixels are about `metres` on the ground, the longer
// side at most `maxSide`, and width x height at most `maxPixels`.
export function imageSize(box, metres, maxSide, maxPixels) {
  const [x0, y0] = mercator([box[0], box[1]]);
  const [x1, y1] = mercator([box[2], box[3]]);
  const scale = Math.cos((((box[1] + box[3]) / 2) * Math.PI) / 180); // ground metres per Mercator metre
  let width = ((x1 - x0) * scale) / metres;
  let height = ((y1 - y0) * scale) / metres;
  const shrink = Math.max(1, width / maxSide, height / maxSide, Math.sqrt((width * height) / maxPixels));
  width = Math.max(1, Math.round(width / shrink));
  height = Math.max(1, Math.round(height / shrink));
  return [width, height];
}

// A box as the API's bbox parameter.
export function bboxParam(box) {
  return box.map((v) => v.toFixed(6)).join(",");
}
