// Building DOM nodes. Everything from the server is written as text (textContent or
// attribute values), never as HTML: charger ids and vendors come from chargers.

const SVG_NS = "http://www.w3.org/2000/svg";

export const $ = (id) => document.getElementById(id);

function build(node, props, children) {
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.setAttribute("class", value);
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

export function el(tag, props = {}, ...children) {
  return build(document.createElement(tag), props, children);
}

export function svg(tag, props = {}, ...children) {
  return build(document.createElementNS(SVG_NS, tag), props, children);
}

// A table with a header row; `rows` are arrays of cells (nodes, text, or el("td")).
export function table(headers, rows, empty) {
  const head = el("tr", {}, headers.map((h) => el("th", { class: h.endsWith("#") ? "num" : null, text: h.replace(/#$/, "") })));
  const body = rows.length
    ? rows
    : [el("tr", {}, el("td", { colspan: headers.length, class: "empty", text: empty }))];
  return el("table", {}, el("thead", {}, head), el("tbody", {}, body));
}

export function section(title, ...children) {
  return el("section", {}, el("h2", { text: title }), ...children);
}
