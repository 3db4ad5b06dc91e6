// The map (Leaflet): the archive's extent, the polygon (drawn with leaflet-geoman, uploaded or picked), the
// optional OpenStreetMap layer, the archive's own imagery of a chosen date as an offline base layer, and a
// date's quicklook and cloud mask over the polygon.

/* global L */

let map = null;
let polygonLayer = null;
let osmLayer = null;
let baseLayer = null;
let quicklookLayer = null;
let cloudLayer = null;

function latLngBounds(box) {
  return L.latLngBounds([box[1], box[0]], [box[3], box[2]]);
}

// Create the map on the archive's extent `box` ([minLon, minLat, maxLon, maxLat], or null).
export function createMap(box) {
  map = L.map("map", { zoomSnap: 0.25, keyboard: true });
  map.createPane("base").style.zIndex = "250";
  map.createPane("quicklook").style.zIndex = "350";
  map.createPane("clouds").style.zIndex = "360";
  if (box) {
    L.rectangle(latLngBounds(box), { color: "#444", weight: 2, dashArray: "6 4", fill: false, interactive: false })
      .addTo(map);
    map.fitBounds(latLngBounds(box));
  } else {
    map.setView([0, 0], 2);
  }
  map.pm.setGlobalOptions({ snappable: false });
  return map;
}

// Start drawing a polygon; `done` gets its GeoJSON geometry when it is closed.
export function startDrawing(done) {
  map.off("pm:create");
  map.once("pm:create", (event) => {
    const geometry = event.layer.toGeoJSON().geometry;
    map.removeLayer(event.layer);
    done(geometry);
  });
  map.pm.enableDraw("Polygon", { snappable: false, finishOn: null });
}

export function isDrawing() {
  return map.pm.globalDrawModeEnabled();
}

// Show `geometry` (GeoJSON) as the polygon and zoom to it; null removes it.
export function showPolygon(geometry) {
  if (polygonLayer) map.removeLayer(polygonLayer);
  polygonLayer = null;
  if (!geometry) return;
  polygonLayer = L.geoJSON(geometry, { style: { color: "#ffd400", weight: 3, fill: false }, interactive: false })
    .addTo(map);
  map.fitBounds(polygonLayer.getBounds(), { maxZoom: 17, padding: [20, 20] });
}

// OpenStreetMap tiles on or off (off by default: a fresh page asks nothing of another server).
export function setOsm(on, url) {
  if (on && !osmLayer) {
    osmLayer = L.tileLayer(url, { maxZoom: 19, attribution: "© OpenStreetMap contributors" }).addTo(map);
  } else if (!on && osmLayer) {
    map.removeLayer(osmLayer);
    osmLayer = null;
  }
}

function imageOverlay(current, url, box, pane, alt) {
  if (current) map.removeLayer(current);
  if (!url) return null;
  return L.imageOverlay(url, latLngBounds(box), { pane, alt, interactive: false }).addTo(map);
}

// The archive's imagery as the base layer (an image URL over `box`), or none.
export function setBase(url, box) {
  baseLayer = imageOverlay(baseLayer, url, box, "base", "Archive imagery");
}

// A date's true colour over `box`, and its cloud mask (or none).
export function setQuicklook(url, box) {
  quicklookLayer = imageOverlay(quicklookLayer, url, box, "quicklook", "True colour of the chosen date");
}

export function setClouds(url, box) {
  cloudLayer = imageOverlay(cloudLayer, url, box, "clouds", "Cloud mask of the chosen date");
}

// Keep the map's size right when its container changes (phone rotation, panels opening).
export function refreshSize() {
  if (map) map.invalidateSize();
}
