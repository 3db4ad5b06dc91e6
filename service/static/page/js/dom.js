// Small DOM helpers. Text from the server or from a file is only ever set as text (textContent, attributes,
// option labels), never parsed as HTML.

export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`no element #${id}`);
  return node;
}

// An element with attributes and text children; `children` are nodes or strings (added as text nodes).
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  node.replaceChildren();
}

// Set a status line's text; `kind` (error, warning, ok) becomes a class for its colour.
export function say(node, text, kind = "") {
  node.textContent = text;
  node.className = kind;
}

// Save a Blob under `filename` through a temporary link (what a download button does).
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

// A number for display: up to 4 decimals, or an empty string for null.
export function formatNumber(value) {
  if (value === null || value === undefined) return "";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return String(value);
  return String(Number(value.toFixed(4)));
}
