// The fleet page: summary counts, the searchable, filterable, paged charger table (paged
// on the server with its cursor, so 5,000 chargers cost one page), open transactions and
// recent events.

import { api } from "./api.js";
import { el, section, table } from "./dom.js";
import { count, dateTime, kWh, startOfToday } from "./format.js";
import {
  chargerHref, connectorChip, lastSeen, statePill, transactionHref, when,
} from "./widgets.js";

const STATES = ["offline", "rejected", "pending", "faulted", "charging", "online"];
const PAGE_SIZE = 50;

export function fleetView() {
  // cursors[i] is the cursor that fetches page i (null: the first page).
  const paging = { cursors: [null], page: 0 };
  const summary = el("div", { id: "summary", class: "cards" });
  const connectors = el("div", { id: "connector-counts", class: "chips" });
  const search = el("input", {
    id: "search", type: "search", placeholder: "Search id, vendor, model, serial",
    "aria-label": "Search chargers",
  });
  const filter = el("select", { id: "state-filter", "aria-label": "Filter by state" },
    el("option", { value: "", text: "all states" }),
    STATES.map((s) => el("option", { value: s, text: s })));
  const info = el("span", { id: "page-info", class: "muted" });
  const prev = el("button", { id: "prev-page", type: "button", text: "‹ Previous" });
  const next = el("button", { id: "next-page", type: "button", text: "Next ›" });
  const chargers = el("div", { id: "chargers" });
  const open = el("div", { id: "open-transactions" });
  const events = el("ol", { id: "events", class: "events" });

  const root = el("div", { class: "fleet" },
    section("Summary", summary, connectors),
    section("Chargers", el("div", { class: "toolbar" }, search, filter, info, prev, next), chargers),
    section("Open transactions", open),
    section("Recent events", events));

  let typing = null;
  let latest = 0;
  const restart = () => { paging.cursors = [null]; paging.page = 0; view.refresh(); };
  search.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(restart, 300); });
  filter.addEventListener("change", restart);
  prev.addEventListener("click", () => { if (paging.page > 0) { paging.page -= 1; view.refresh(); } });
  next.addEventListener("click", () => {
    if (paging.cursors[paging.page + 1]) { paging.page += 1; view.refresh(); }
  });
  const setFilter = (state) => { filter.value = state; restart(); };

  const view = {
    root,
    title: "Fleet",
    async refresh() {
      // A refresh started before the last keystroke must not paint over a newer one.
      const mine = ++latest;
      const [sum, page] = await Promise.all([
        api("/api/dashboard/summary", { query: { since: startOfToday() } }),
        api("/api/dashboard/chargers", {
          query: { search: search.value.trim(), state: filter.value, limit: PAGE_SIZE,
            cursor: paging.cursors[paging.page] },
        }),
      ]);
      if (mine !== latest) return;
      summary.replaceChildren(...summaryCards(sum, setFilter));
      connectors.replaceChildren(...connectorCounts(sum.connectors));
      paging.cursors[paging.page + 1] = page.next_cursor;
      const first = paging.page * PAGE_SIZE;
      info.textContent = page.total
        ? `${count(first + 1)}–${count(first + page.items.length)} of ${count(page.total)}`
        : "no chargers match";
      prev.disabled = paging.page === 0;
      next.disabled = !page.next_cursor;
      chargers.replaceChildren(chargerTable(page.items));
      open.replaceChildren(openTable(sum.open_transactions, sum));
      events.replaceChildren(...sum.events.slice(0, 20).map(eventItem));
      if (!sum.events.length) events.append(el("li", { class: "muted", text: "no events since start" }));
    },
  };
  return view;
}

function card(label, value, { id, filter, state, note } = {}, onFilter) {
  const props = { class: "card" + (state ? " card-" + state : ""), "data-count": id };
  const body = [el("div", { class: "value", text: value }), el("div", { class: "label", text: label })];
  if (note) body.push(el("div", { class: "note", text: note }));
  if (filter !== undefined) {
    return el("button", { ...props, type: "button", onclick: () => onFilter(filter) }, body);
  }
  return el("div", props, body);
}

function summaryCards(sum, onFilter) {
  const c = sum.chargers;
  const t = sum.transactions;
  const since = "since " + dateTime(sum.since);
  const cards = [
    card("chargers", count(c.total), { id: "total", filter: "" }, onFilter),
    card("online", count(c.online), { id: "online", filter: "online", state: "online" }, onFilter),
    card("offline", count(c.offline), { id: "offline", filter: "offline", state: "offline" }, onFilter),
    card("pending", count(c.pending), { id: "pending", filter: "pending", state: "pending" }, onFilter),
    card("faulted", count(c.faulted), { id: "faulted", filter: "faulted", state: "faulted" }, onFilter),
    card("charging", count(c.charging), { id: "charging", filter: "charging", state: "charging" }, onFilter),
    card("open transactions", count(t.open), {
      id: "open",
      note: t.on_offline_chargers ? `${count(t.on_offline_chargers)} on offline chargers` : null,
    }),
    card("energy today", kWh(t.energy_since_wh), {
      id: "energy", note: `${count(t.started_since)} transactions ${since}`,
    }),
  ];
  // Cards the plug-ins add (the bridge's plug & charge counts): drawn, never interpreted.
  for (const extra of sum.cards || []) {
    cards.push(card(extra.label, extra.value, { id: extra.id, note: extra.note }));
  }
  return cards;
}

function connectorCounts(byStatus) {
  const entries = Object.entries(byStatus);
  if (!entries.length) return [el("span", { class: "muted", text: "no connector has reported yet" })];
  return [el("span", { class: "muted", text: "Connectors:" }),
    ...entries.map(([status, n]) => el("span", {
      class: "status " + (status === "Offline" ? "status-stale" : "status-" + status),
      "data-connector-status": status,
      text: `${status} ${count(n)}`,
    }))];
}

function chargerTable(items) {
  const rows = items.map((c) => el("tr", { "data-charger-id": c.id, class: "row-" + c.state },
    el("td", {}, el("a", { href: chargerHref(c.id), text: c.id })),
    el("td", {}, statePill(c.state),
      c.registration_status !== "Accepted" && c.state !== c.registration_status.toLowerCase()
        ? el("span", { class: "state state-" + c.registration_status.toLowerCase(), text: c.registration_status.toLowerCase() })
        : null),
    el("td", {}, el("div", { class: "chips" }, c.connectors.length
      ? c.connectors.map((k) => connectorChip(k, c.connected))
      : el("span", { class: "muted", text: "no status yet" }))),
    el("td", { text: [c.vendor, c.model].filter(Boolean).join(" ") || "—" }),
    el("td", {}, lastSeen(c.last_seen_at)),
    el("td", { class: "num", text: c.open_transactions || "—" })));
  return table(["Charger", "State", "Connectors", "Model", "Last seen", "Open tx#"], rows,
    "no chargers match");
}

function openTable(items, sum) {
  const rows = items.map((t) => el("tr", { "data-transaction-id": t.id },
    el("td", {}, el("a", { href: transactionHref(t.id), text: t.id })),
    el("td", {}, el("a", { href: chargerHref(t.charge_point_id), text: t.charge_point_id })),
    el("td", { text: t.connector_id }),
    el("td", { text: t.id_tag }),
    el("td", {}, when(t.start_timestamp)),
    el("td", {}, t.charger_connected
      ? el("span", { class: "state state-charging", text: "open" })
      : el("span", { class: "state state-offline", title: "the charger is offline: open in our books, its state is unknown", text: "charger offline" }))));
  const shown = table(["Transaction", "Charger", "Connector", "idTag", "Started", "State"], rows,
    "no open transactions");
  if (sum.transactions.open > items.length) {
    return el("div", {}, shown, el("p", { class: "muted", text: `newest ${items.length} of ${count(sum.transactions.open)}` }));
  }
  return shown;
}

function eventItem(event) {
  const details = [];
  if (event.connector_id !== undefined) details.push("connector " + event.connector_id);
  if (event.status) details.push(event.status);
  if (event.error_code && event.error_code !== "NoError") details.push(event.error_code);
  if (event.transaction_id !== undefined) details.push("transaction " + event.transaction_id);
  if (event.reason) details.push(event.reason);
  return el("li", {},
    el("time", { datetime: event.at || "", text: dateTime(event.at) }),
    el("span", { class: "type", text: event.type.replace(/([a-z])([A-Z])/g, "$1 $2") }),
    event.charge_point_id ? el("a", { href: chargerHref(event.charge_point_id), text: event.charge_point_id }) : null,
    el("span", { class: "muted", text: details.join(" · ") }));
}
