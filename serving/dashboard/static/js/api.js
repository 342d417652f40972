// Reading the API: every request sends the read key the person entered (kept for this browser
// tab only), and a refusal becomes an ApiError whose message is the API's own.
const KEY_STORE = "recsys-read-key";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
  get needsKey() {
    return this.status === 401 || this.status === 403;
  }
}

export function readKey() {
  return sessionStorage.getItem(KEY_STORE) || "";
}

export function setReadKey(key) {
  if (key) sessionStorage.setItem(KEY_STORE, key);
  else sessionStorage.removeItem(KEY_STORE);
}

// GET `path` with query `params` (null and undefined values left out); the parsed JSON body.
export async function getJSON(path, params = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") query.set(name, String(value));
  }
  const url = query.toString() ? `${path}?${query}` : path;
  const headers = { Accept: "application/json" };
  const key = readKey();
  if (key) headers["X-API-Key"] = key;
  const response = await fetch(url, { headers });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body?.error?.message || `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  return body;
}

// Like getJSON, but a 404 is null (a part the artifact does not have).
export async function getOptional(path, params = {}) {
  try {
    return await getJSON(path, params);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}
