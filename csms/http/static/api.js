// Calls to /api/ with the operator token. The token is entered once and kept in
// localStorage; a refused token is forgotten and the login form says why.

const TOKEN_KEY = "csms.operatorToken";

let onRefused = () => {};

export function setRefusedHandler(handler) {
  onRefused = handler;
}

export const token = {
  get: () => localStorage.getItem(TOKEN_KEY),
  set: (value) => localStorage.setItem(TOKEN_KEY, value),
  forget: () => localStorage.removeItem(TOKEN_KEY),
};

// A link may carry the token as ?token=...: store it and take it out of the address bar.
export function takeTokenFromUrl() {
  const params = new URLSearchParams(window.location.search);
  const value = params.get("token");
  if (!value) return;
  token.set(value);
  params.delete("token");
  const rest = params.toString();
  history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
}

export class ApiError extends Error {
  constructor(status, problem) {
    const detail = problem && (problem.detail || problem.title);
    super(`${status} ${problem && problem.title ? problem.title : "error"}${detail && detail !== problem.title ? ": " + detail : ""}`);
    this.status = status;
    this.problem = problem;
  }
}

// The JSON answer, or throws ApiError carrying the problem document.
export async function api(path, { method = "GET", body, query } = {}) {
  const value = token.get();
  if (!value) {
    onRefused(null);
    throw new ApiError(401, { title: "No token" });
  }
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== null && v !== undefined && v !== "") params.set(k, v);
    }
    if ([...params].length) url += "?" + params;
  }
  const headers = { Authorization: "Bearer " + value, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  if (response.status === 401) {
    token.forget();
    onRefused("The token was refused (revoked, expired or mistyped). Enter another one.");
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { title: text.slice(0, 200) };
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}
