// The CSMS dashboard: a hash router over three views (fleet, charger, transaction), each
// refreshed every few seconds from /api/ with the operator token. Polling rather than
// server-sent events: EventSource cannot send an Authorization header (see
// csms/http/dashboard.py). Plain ES modules, no build step.

import { ApiError, setRefusedHandler, takeTokenFromUrl, token } from "./api.js";
import { $, el } from "./dom.js";
import { dateTime, offsetLabel, zoneName } from "./format.js";
import { fleetView } from "./fleet.js";
import { chargerView } from "./charger.js";
import { sessionView } from "./session.js";

const REFRESH_MS = 5000;

let current = null;
let timer = null;

function route() {
  const [, kind, id] = location.hash.replace(/^#/, "").split("/").map(decodeURIComponent);
  if (kind === "chargers" && id) return { key: "c:" + id, make: () => chargerView(id), crumb: id };
  if (kind === "transactions" && id) return { key: "t:" + id, make: () => sessionView(id), crumb: "transaction " + id };
  return { key: "fleet", make: fleetView, crumb: null };
}

function showLogin(reason) {
  clearTimeout(timer);
  current = null;
  $("view").hidden = true;
  $("forget").hidden = true;
  $("banner").hidden = true;
  $("login").hidden = false;
  $("login-reason").hidden = !reason;
  $("login-reason").textContent = reason || "";
  $("token").focus();
}

function banner(text) {
  $("banner").textContent = text;
  $("banner").hidden = !text;
}

function mount() {
  const wanted = route();
  if (current && current.key === wanted.key) return;
  const view = wanted.make();
  current = { key: wanted.key, view };
  $("view").replaceChildren(view.root);
  $("crumbs").replaceChildren(
    el("a", { href: "#/", text: "Fleet" }),
    wanted.crumb ? " › " + wanted.crumb : "");
  document.title = `CSMS — ${view.title}`;
}

async function tick() {
  clearTimeout(timer);
  if (!token.get()) {
    showLogin(null);
    return;
  }
  mount();
  const mounted = current;
  try {
    await mounted.view.refresh();
    if (current !== mounted) return;
    $("login").hidden = true;
    $("view").hidden = false;
    $("forget").hidden = false;
    $("view").dataset.loaded = "true";
    $("clock").textContent = `updated ${dateTime(new Date().toISOString())} · times in ${zoneName()} (${offsetLabel()})`;
    banner("");
  } catch (error) {
    if (!token.get()) return;  // refused: the login form is showing
    if (error instanceof ApiError && error.status === 404) {
      $("view").hidden = false;
      banner("Not found: " + error.message);
    } else {
      banner(`Cannot load (${error.message}); retrying every ${REFRESH_MS / 1000} s.`);
    }
  }
  timer = setTimeout(tick, REFRESH_MS);
}

setRefusedHandler((reason) => showLogin(reason));

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("token").value.trim();
  if (!value) return;
  token.set(value);
  $("token").value = "";
  tick();
});

$("forget").addEventListener("click", () => {
  token.forget();
  showLogin("Token forgotten.");
});

window.addEventListener("hashchange", () => {
  banner("");
  tick();
});

takeTokenFromUrl();
tick();
