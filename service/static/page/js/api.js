// Talking to the polyfis API of this server: JSON and binary requests, the bearer token when the server asks
// for one, and its JSON errors turned into ApiError (whose message is the server's, shown as text).

let token = null;
let onUnauthorized = () => {};

export class ApiError extends Error {
  constructor(message, status, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Called with the error when a request is refused for want of a valid token.
export function whenUnauthorized(callback) {
  onUnauthorized = callback;
}

export function hasToken() {
  return token !== null;
}

// Client-credentials grant on /oauth/token; keeps the token in memory for this page only.
export async function signIn(clientId, secret) {
  const form = new URLSearchParams({ grant_type: "client_credentials", client_id: clientId, client_secret: secret });
  const response = await fetch("/oauth/token", { method: "POST", body: form });
  const body = await readError(response);
  token = body.access_token;
}

async function readError(response) {
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const error = body && body.error && typeof body.error.message === "string"
      ? new ApiError(body.error.message, response.status, body.error.code)
      : new ApiError(`HTTP ${response.status}: ${text.slice(0, 200)}`, response.status, "");
    if (response.status === 401) onUnauthorized(error);
    throw error;
  }
  return body;
}

function headers(extra = {}) {
  const all = { ...extra };
  if (token) all.Authorization = `Bearer ${token}`;
  return all;
}

// GET or POST a JSON document; the parsed answer, or an ApiError.
export async function getJson(url) {
  return readError(await fetch(url, { headers: headers() }));
}

// POST `body` (a string, sent as it is) as JSON; the answer's exact bytes and its parsed JSON.
export async function postJson(url, body) {
  const response = await fetch(url, { method: "POST", headers: headers({ "Content-Type": "application/json" }), body });
  if (!response.ok) await readError(response);
  const bytes = await response.arrayBuffer();
  return { bytes, json: JSON.parse(new TextDecoder().decode(bytes)), response };
}

// A binary answer (an image, a CSV, a Parquet file) as a Blob, or an ApiError with the server's message.
export async function getBlob(url, init = {}) {
  const response = await fetch(url, { ...init, headers: headers(init.headers || {}) });
  if (!response.ok) await readError(response);
  return response.blob();
}
