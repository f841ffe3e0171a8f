// The CSMS live dashboard: polls GET /api/dashboard every 2 s with the operator token.
//
// The token is entered once and kept in localStorage. A link may carry it as ?token=...;
// it is stored and removed from the address bar at once. Polling rather than server-sent
// events: EventSource cannot send an Authorization header (see csms/http/dashboard.py).
// Everything from the server is written with textContent: charger ids come from chargers.
"use strict";

const TOKEN_KEY = "csms.operatorToken";
const POLL_MS = 2000;

const $ = (id) => document.getElementById(id);
let timer = null;

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

function takeTokenFromUrl() {
  const params = new URLSearchParams(window.location.search);
  const token = params.get("token");
  if (token) {
    localStorage.setItem(TOKEN_KEY, token);
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", window.location.pathname + (rest ? "?" + rest : ""));
  }
}

function showLogin(reason) {
  clearTimeout(timer);
  $("content").hidden = true;
  $("forget").hidden = true;
  $("banner").hidden = true;
  $("login").hidden = false;
  if (reason) $("login-reason").textContent = reason;
  $("token").focus();
}

function showBanner(text) {
  $("banner").textContent = text;
  $("banner").hidden = !text;
}

async function poll() {
  clearTimeout(timer);
  const token = localStorage.getItem(TOKEN_KEY);
  if (!token) {
    showLogin();
    return;
  }
  try {
    const response = await fetch("/api/dashboard", {
      headers: { Authorization: "Bearer " + token, Accept: "application/json" },
      cache: "no-store",
    });
    if (response.status === 401 || response.status === 403) {
      localStorage.removeItem(TOKEN_KEY);
      showLogin("The token was refused (revoked or mistyped). Enter another one.");
      return;
    }
    if (!response.ok) throw new Error("HTTP " + response.status);
    render(await response.json());
    showBanner("");
  } catch (error) {
    showBanner("Cannot reach the server (" + error.message + "); retrying every 2 s.");
  }
  timer = setTimeout(poll, POLL_MS);
}

function render(data) {
  $("login").hidden = true;
  $("content").hidden = false;
  $("forget").hidden = false;
  const online = data.chargers.filter((c) => c.connected).length;
  $("summary").textContent =
    `${online} of ${data.total_chargers} chargers online · ` +
    `${data.transactions.length} charging`;
  $("updated").textContent = "updated " + formatTime(data.generated_at);
  $("chargers").replaceChildren(...data.chargers.map(chargerCard));
  $("sessions").replaceChildren(...sessionRows(data));
  $("events").replaceChildren(...data.events.map(eventItem));
}

function chargerCard(charger) {
  const meta = [charger.vendor, charger.model, charger.firmware_version].filter(Boolean);
  if (charger.registration_status !== "Accepted") meta.unshift(charger.registration_status);
  const connectors = el("ul", { class: "connectors" });
  for (const connector of charger.connectors) {
    const label = connector.connector_id === 0 ? "charger" : "#" + connector.connector_id;
    const status = el("span", { class: "status status-" + connector.status, text: connector.status });
    if (connector.error_code && connector.error_code !== "NoError") {
      status.textContent += " · " + connector.error_code;
    }
    connectors.append(el("li", { "data-connector-id": connector.connector_id }, label, status));
  }
  if (!charger.connectors.length) {
    connectors.append(el("li", { class: "muted", text: "no status reported yet" }));
  }
  return el(
    "article",
    { class: "charger " + (charger.connected ? "online" : "offline"), "data-charger-id": charger.id },
    el(
      "div",
      { class: "name" },
      el("span", {
        class: "dot" + (charger.connected ? " online" : ""),
        title: charger.connected ? "connected" : "offline",
      }),
      charger.id,
    ),
    el("div", { class: "meta", text: meta.join(" · ") || "\u00a0" }),
    connectors,
  );
}

function sessionRows(data) {
  const rows = data.transactions.map((tx) => {
    const session = data.sessions.find((s) => s.transaction_id === tx.transaction_id);
    return row(tx.charge_point_id, tx.connector_id, tx.transaction_id, tx.id_tag, tx.energy_wh,
      tx.soc_percent, tx.vehicle, session ? session.state : null, tx.started_at);
  });
  // Plug-and-charge sessions the charger has not started a transaction for (yet).
  const known = new Set(data.transactions.map((tx) => tx.transaction_id));
  for (const s of data.sessions) {
    if (s.transaction_id === null || !known.has(s.transaction_id)) {
      rows.push(row(s.charge_point_id, s.connector_id, s.transaction_id, null, null,
        s.soc_percent, s.vehicle, s.state, s.started_at));
    }
  }
  if (!rows.length) {
    rows.push(el("tr", {}, el("td", { colspan: 9, class: "empty", text: "nothing charging" })));
  }
  return rows;
}

function row(chargePoint, connector, transaction, idTag, energyWh, soc, vehicle, state, started) {
  const vehicleText = vehicle ? [vehicle.name, vehicle.vin].filter(Boolean).join(" · ") : "—";
  return el(
    "tr",
    { "data-transaction-id": transaction ?? "" },
    el("td", { text: chargePoint }),
    el("td", { text: connector }),
    el("td", { text: transaction ?? "—" }),
    el("td", { text: idTag ?? "—" }),
    el("td", { class: "num", text: energyWh === null ? "—" : (energyWh / 1000).toFixed(2) + " kWh" }),
    el("td", { class: "num", text: soc === null || soc === undefined ? "—" : Math.round(soc) + " %" }),
    el("td", { text: vehicleText }),
    el("td", { text: state ?? "—" }),
    el("td", { text: formatTime(started) }),
  );
}

function eventItem(event) {
  const details = [];
  if (event.connector_id !== undefined) details.push("connector " + event.connector_id);
  if (event.status) details.push(event.status);
  if (event.error_code && event.error_code !== "NoError") details.push(event.error_code);
  if (event.transaction_id !== undefined) details.push("transaction " + event.transaction_id);
  if (event.meter_start_wh !== undefined) details.push("meter " + event.meter_start_wh + " Wh");
  if (event.meter_stop_wh !== undefined) details.push("meter " + event.meter_stop_wh + " Wh");
  if (event.reason) details.push(event.reason);
  return el(
    "li",
    {},
    el("time", { datetime: event.at, text: formatTime(event.at) }),
    el("span", { class: "type", text: event.type.replace(/([a-z])([A-Z])/g, "$1 $2") }),
    el("span", { text: event.charge_point_id }),
    el("span", { class: "muted", text: details.join(" · ") }),
  );
}

function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return isNaN(date) ? iso : date.toLocaleTimeString();
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token").value.trim();
  if (!token) return;
  localStorage.setItem(TOKEN_KEY, token);
  $("token").value = "";
  poll();
});

$("forget").addEventListener("click", () => {
  localStorage.removeItem(TOKEN_KEY);
  showLogin("Token forgotten.");
});

takeTokenFromUrl();
poll();
