// One charger: details, connectors, actions (each confirmed, each reporting what the
// charger answered), status history and recent transactions.

import { ApiError, api } from "./api.js";
import { el, section, table } from "./dom.js";
import { ago, dateTime, stateOf } from "./format.js";
import {
  confirmAction, connectorChip, statePill, transactionHref, when,
} from "./widgets.js";

export function chargerView(id) {
  const path = "/api/charge-points/" + encodeURIComponent(id);
  const details = el("dl", { id: "charger-details", class: "details" });
  const connectors = el("div", { id: "connectors" });
  const history = el("div", { id: "status-history" });
  const transactions = el("div", { id: "transactions" });
  const log = el("ol", { id: "action-log", class: "action-log" });

  const accept = el("button", { type: "button", id: "action-accept", class: "primary", hidden: true, text: "Accept charger" });
  const softReset = el("button", { type: "button", id: "action-reset-soft", text: "Soft reset" });
  const hardReset = el("button", { type: "button", id: "action-reset-hard", text: "Hard reset" });
  const idTag = el("input", { id: "start-id-tag", placeholder: "idTag", "aria-label": "idTag for remote start", size: 14 });
  const startConnector = el("select", { id: "start-connector", "aria-label": "connector to start" });
  const start = el("button", { type: "button", id: "action-start", text: "Remote start" });
  const unlockConnector = el("select", { id: "unlock-connector", "aria-label": "connector to unlock" });
  const unlock = el("button", { type: "button", id: "action-unlock", text: "Unlock" });
  const actions = el("div", { id: "actions", class: "actions" },
    accept,
    el("div", { class: "action" }, el("span", { class: "label", text: "Reset" }), softReset, hardReset),
    el("div", { class: "action" }, el("span", { class: "label", text: "Remote start" }), idTag, startConnector, start),
    el("div", { class: "action" }, el("span", { class: "label", text: "Unlock connector" }), unlockConnector, unlock),
    el("p", { class: "muted", text: "Remote stop: the Stop button of an open transaction below." }),
    log);

  const root = el("div", { class: "charger-page", "data-charger-id": id },
    el("h2", { class: "page-title" }, id, el("span", { id: "charger-state" })),
    el("div", { class: "columns" },
      section("Charger", details),
      section("Actions", actions)),
    section("Connectors", connectors),
    section("Recent transactions", transactions),
    section("Status history", history));

  // Each action: confirm, send, and write the charger's own answer (or the refusal) down.
  async function act(title, text, send, describe) {
    if (!(await confirmAction(title, text))) return;
    const item = el("li", { class: "pending-answer" }, el("time", { text: dateTime(new Date().toISOString()) }), " ", title, ": sending…");
    log.prepend(item);
    try {
      const answer = await send();
      item.className = "answer-ok";
      item.lastChild.textContent = ": " + describe(answer);
    } catch (error) {
      item.className = "answer-error";
      item.lastChild.textContent = ": refused — " + (error instanceof ApiError ? error.message : String(error));
    }
    view.refresh().catch(() => {});
  }
  const command = (action, payload) => () =>
    api(`${path}/commands/${action}`, { method: "POST", body: payload });
  const answered = (action) => (answer) =>
    `${id} answered ${action}: ${answer.status ?? JSON.stringify(answer)}`;

  accept.addEventListener("click", () => act("Accept charger",
    `Accept ${id}? It is asked to boot again and is then served as Accepted.`,
    () => api(`${path}/accept`, { method: "POST" }),
    (a) => `registration is now ${a.registration_status}; ${id} is asked to boot again`));
  for (const [button, type] of [[softReset, "Soft"], [hardReset, "Hard"]]) {
    button.addEventListener("click", () => act(`${type} reset`,
      `Send a ${type} Reset to ${id}? Running transactions are stopped.`,
      command("Reset", { type }), answered("Reset")));
  }
  start.addEventListener("click", () => {
    const tag = idTag.value.trim();
    if (!tag) { idTag.focus(); return; }
    const connectorId = Number(startConnector.value);
    act("Remote start", `Start a transaction on ${id} connector ${connectorId} for idTag ${tag}?`,
      command("RemoteStartTransaction", { idTag: tag, connectorId }), answered("RemoteStartTransaction"));
  });
  unlock.addEventListener("click", () => {
    const connectorId = Number(unlockConnector.value);
    act("Unlock connector", `Unlock connector ${connectorId} of ${id}? A running transaction on it stops.`,
      command("UnlockConnector", { connectorId }), answered("UnlockConnector"));
  });
  const stop = (transactionId) => act("Remote stop", `Stop transaction ${transactionId} on ${id}?`,
    command("RemoteStopTransaction", { transactionId }), answered("RemoteStopTransaction"));

  const view = {
    root,
    title: id,
    async refresh() {
      const [charger, statuses, recent] = await Promise.all([
        api(path),
        api(path + "/status-history", { query: { limit: 30 } }),
        api("/api/transactions", { query: { charge_point_id: id, limit: 20 } }),
      ]);
      const state = stateOf(charger);
      root.querySelector("#charger-state").replaceChildren(statePill(state));
      accept.hidden = charger.registration_status === "Accepted";
      details.replaceChildren(...detailRows(charger));
      const real = charger.connectors.filter((c) => c.connector_id > 0);
      syncOptions(startConnector, real);
      syncOptions(unlockConnector, real);
      connectors.replaceChildren(connectorTable(charger));
      transactions.replaceChildren(transactionTable(recent.items, charger.connected, stop));
      history.replaceChildren(historyTable(statuses.items));
    },
  };
  return view;
}

function syncOptions(select, connectors) {
  const wanted = connectors.length ? connectors.map((c) => String(c.connector_id)) : ["1"];
  const have = [...select.options].map((o) => o.value);
  if (wanted.join() === have.join()) return;  // keep the operator's choice across refreshes
  select.replaceChildren(...wanted.map((v) => el("option", { value: v, text: "#" + v })));
}

function detailRows(c) {
  const pairs = [
    ["Connection", c.connected ? "connected" : "offline"],
    ["Registration", c.registration_status],
    ["Last seen", c.last_seen_at ? `${ago(c.last_seen_at)} (${dateTime(c.last_seen_at)})` : "never"],
    ["Last boot", dateTime(c.last_boot_at)],
    ["First seen", dateTime(c.first_seen_at)],
    ["Vendor / model", [c.vendor, c.model].filter(Boolean).join(" / ") || "—"],
    ["Serial", c.charge_box_serial_number || c.serial_number || "—"],
    ["Firmware", c.firmware_version || "—"],
  ];
  if (!c.connected) pairs.splice(1, 0, ["Note", "offline: connector states below are the last known, not live"]);
  return pairs.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]);
}

function connectorTable(charger) {
  const rows = charger.connectors.map((c) => el("tr", { "data-connector-id": c.connector_id },
    el("td", { text: c.connector_id === 0 ? "0 (charger)" : c.connector_id }),
    el("td", {}, connectorChip(c, charger.connected)),
    el("td", { text: c.info || c.vendor_error_code || "—" }),
    el("td", {}, when(c.updated_at))));
  return table(["Connector", "Status", "Info", "Since"], rows, "no status reported yet");
}

function transactionTable(items, connected, stop) {
  const rows = items.map((t) => el("tr", { "data-transaction-id": t.id },
    el("td", {}, el("a", { href: transactionHref(t.id), text: t.id })),
    el("td", { text: t.connector_id }),
    el("td", { text: t.id_tag }),
    el("td", {}, when(t.start_timestamp)),
    el("td", {}, t.active ? el("span", { class: "state state-charging", text: "open" }) : when(t.stop_timestamp)),
    el("td", { class: "num", text: t.energy_wh === null ? "—" : (t.energy_wh / 1000).toFixed(2) + " kWh" }),
    el("td", {}, t.active
      ? el("button", { type: "button", class: "stop", "data-stop": t.id, disabled: !connected, text: "Stop", onclick: () => stop(t.id) })
      : (t.stop_reason || ""))));
  return table(["Transaction", "Connector", "idTag", "Started", "Stopped", "Energy#", ""], rows,
    "no transactions yet");
}

function historyTable(items) {
  const rows = items.map((s) => el("tr", {},
    el("td", {}, when(s.received_at)),
    el("td", { text: s.connector_id }),
    el("td", {}, el("span", { class: "status status-" + s.status, text: s.status })),
    el("td", { text: s.error_code === "NoError" ? "—" : s.error_code }),
    el("td", { text: s.info || "" }),
    el("td", { text: s.reported_at ? dateTime(s.reported_at) + (s.clock_suspect ? " (clock suspect)" : "") : "—" })));
  return table(["Received", "Connector", "Status", "Error", "Info", "Charger's time"], rows,
    "no status notifications yet");
}
