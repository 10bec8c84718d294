// The page shell: hash routes (#/fleet, #/sites, #/site/<id>, #/activations), one
// server-sent event stream per view (snapshot, then deltas), the status line.
import { esc, num, stamp } from "/static/format.js";
import * as fleet from "/static/fleet.js";
import * as sites from "/static/sites.js";
import * as site from "/static/site.js";
import * as activations from "/static/activations.js";

const VIEWS = { fleet, sites, site, activations };
const main = document.getElementById("main");
const statusEl = document.getElementById("status");
const statusText = document.getElementById("status-text");
const banner = document.getElementById("banner");
let current = null;

function setStatus(status, connected) {
  if (!connected) {
    statusEl.dataset.state = "down";
    statusText.textContent = "disconnected: retrying";
    return;
  }
  const live = status.mode === "live";
  statusEl.dataset.state = status.error ? "down" : status.loading ? "loading" : live ? "live" : "archive";
  statusText.textContent = live
    ? `live · ${stamp(status.now)}`
    : `archive · ends ${stamp(status.now)}`;
  const notes = [];
  if (status.loading) notes.push(`Loading the last ${Math.round(status.window_s / 60)} minutes from Kafka: ${num(status.progress * 100, 0)} %`);
  if (status.waiting_for.length) notes.push(`Waiting for topics: ${status.waiting_for.join(", ")}`);
  if (status.error) notes.push(status.error);
  banner.hidden = notes.length === 0;
  banner.className = "banner " + (status.error ? "bad" : "warn");
  banner.innerHTML = notes.map(esc).join("<br>");
  document.getElementById("footer-source").textContent =
    `${status.source}${status.fleet_ids.length ? " · fleet " + status.fleet_ids.join(", ") : ""}`;
  const events = Object.values(status.stats.events).reduce((a, b) => a + b, 0);
  const bad = Object.entries(status.stats.undecodable);
  document.getElementById("footer-stats").textContent =
    `${num(events, 0)} events read` +
    (bad.length ? ` · undecodable: ${bad.map(([t, n]) => `${t} ${n}`).join(", ")}` : "") +
    (status.stats.skipped ? ` · skipped ${status.stats.skipped}` : "") +
    (status.stats.last_error ? ` · last problem: ${status.stats.last_error}` : "");
  window.flowerhubNow = status.now;
}

function openStream(name, params, view) {
  const query = new URLSearchParams({ view: name, ...params });
  const source = new EventSource(`/api/stream?${query}`);
  const handle = (snapshot) => (event) => {
    const payload = JSON.parse(event.data);
    setStatus(payload.status, true);
    view.update(payload, snapshot);
  };
  source.addEventListener("snapshot", handle(true));
  source.addEventListener("delta", handle(false));
  source.onerror = () => setStatus(null, false);
  return source;
}

// #/site/<id>?from=<ISO>&to=<ISO>: a view, its argument and its query (the Site view's
// time range, as an audit report links an offender)
function route() {
  const [path, search = ""] = (location.hash || "#/fleet").split("?");
  const [, name = "fleet", ...rest] = path.split("/");
  const viewName = VIEWS[name] ? name : "fleet";
  const arg = rest.length ? decodeURIComponent(rest.join("/")) : null;
  const query = Object.fromEntries(new URLSearchParams(search));
  if (current) {
    current.source.close();
    current.view.destroy();
  }
  main.replaceChildren();
  main.dataset.view = viewName;
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.view === (viewName === "site" ? "sites" : viewName));
  }
  const ctx = {
    arg,
    query,
    reopen(params) {
      current.source.close();
      current.source = openStream(viewName, { ...baseParams, ...params }, current.view);
    },
  };
  const range = {};
  for (const key of ["from", "to"]) if (query[key]) range[key] = query[key];
  const baseParams = viewName === "site" ? { site: arg || "", ...range } : {};
  const view = VIEWS[viewName].mount(main, ctx);
  current = { view, source: openStream(viewName, { ...baseParams, ...(view.params || {}) }, view) };
}

window.addEventListener("hashchange", route);
route();
