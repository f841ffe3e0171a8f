// Pieces shared by the views: state pills, connector chips, links, the confirm dialog.

import { $, el } from "./dom.js";
import { ago, dateTime } from "./format.js";

export const chargerHref = (id) => "#/chargers/" + encodeURIComponent(id);
export const transactionHref = (id) => "#/transactions/" + id;

export function statePill(state) {
  return el("span", { class: "state state-" + state, "data-state": state, text: state });
}

// Live connector status on a connected charger; on an offline one, only "last known".
export function connectorChip(connector, connected) {
  const label = connector.connector_id === 0 ? "charger" : "#" + connector.connector_id;
  const error = connector.error_code && connector.error_code !== "NoError" ? " · " + connector.error_code : "";
  if (!connected) {
    return el("span", {
      class: "status status-stale",
      title: "charger offline; last report " + dateTime(connector.updated_at),
      text: `${label} last known ${connector.status}${error}`,
    });
  }
  return el("span", {
    class: "status status-" + connector.status,
    title: "since " + dateTime(connector.updated_at),
    text: `${label} ${connector.status}${error}`,
  });
}

export function when(iso) {
  return el("time", { datetime: iso || "", title: dateTime(iso), text: dateTime(iso) });
}

export function lastSeen(iso) {
  return el("time", { datetime: iso || "", title: dateTime(iso), text: ago(iso) }, el("br"),
    el("small", { class: "muted", text: dateTime(iso) }));
}

// Resolves true when the operator confirms in the page's <dialog>.
export function confirmAction(title, text) {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    $("confirm-ok").focus();
  });
}
