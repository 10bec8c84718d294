// Sites view: every site, sortable, filterable and searchable; live rows pushed by the
// server. Tabulator (https://tabulator.info) renders only the rows in view (virtual DOM),
// which keeps 10,000 rows smooth.
import { TabulatorFull as Tabulator } from "/vendor/tabulator_esm.min.js";
import { age, badge, esc, h, modeName, num, signed, tone } from "/static/format.js";

const RESULTS = ["APPLIED", "CLAMPED", "OVERRIDDEN", "FAILED", "REJECTED"];
const LINKS = ["ONLINE", "DEGRADED", "OFFLINE", "REDISCOVERED"];
let nowUs = 0;

const kwCell = (cell) => esc(signed(cell.getValue(), 2));
const kwCol = (title, field) => ({ title, field, hozAlign: "right", sorter: "number", minWidth: 78, formatter: kwCell });
const columns = [
  { title: "Site", field: "id", frozen: true, minWidth: 120,
    formatter: (c) => `<a href="#/site/${encodeURIComponent(c.getValue())}">${esc(c.getValue())}</a>` },
  { title: "OEM", field: "oem", minWidth: 72 },
  { title: "Model", field: "model", minWidth: 130 },
  { title: "Link", field: "link", minWidth: 96, formatter: (c) => badge(c.getValue()) },
  { title: "Mode", field: "mode", minWidth: 124, formatter: (c) => esc(modeName(c.getValue())) },
  { title: "SoC %", field: "soc_pct", hozAlign: "right", sorter: "number", minWidth: 88,
    formatter: (c) => {
      const v = c.getValue();
      if (v === null) return "–";
      return `<span class="soc"><span class="soc-bar" style="width:${Math.max(0, Math.min(100, v))}%"></span><span class="soc-val">${num(v, 1)}</span></span>`;
    } },
  kwCol("Power kW", "power_kw"),
  { ...kwCol("Baseline kW", "baseline_kw"),
    formatter: (c) => c.getRow().getData().baseline_reported ? kwCell(c)
      : `<span class="muted" title="not reported by the bridge yet: 0 assumed">${esc(signed(c.getValue(), 2))}*</span>` },
  kwCol("Delivered kW", "delivered_kw"),
  kwCol("Setpoint kW", "setpoint_kw"),
  { title: "Armed", field: "armed", minWidth: 80, formatter: (c) => esc(c.getValue() ?? "–") },
  { title: "Last command", field: "result", minWidth: 178,
    formatter: (c) => {
      const d = c.getRow().getData();
      if (!d.result) return '<span class="muted">–</span>';
      const measured = d.result_kw === null ? "" : ` <span class="cmd-kw">${esc(signed(d.result_kw, 2, "kW"))}</span>`;
      return `${badge(d.result)}${measured}`;
    } },
  { title: "Faults", field: "faults", minWidth: 130, widthGrow: 2, sorter: "number",
    formatter: (c) => {
      const d = c.getRow().getData();
      if (!d.faults) return d.faulted ? badge("FAULT") : '<span class="muted">none</span>';
      return `<span class="badge ${tone(d.fault_severity)}">${d.faults}</span> <span title="${esc(d.fault_text)}">${esc(d.fault_text)}</span>`;
    } },
  { title: "Last seen", field: "last_seen", minWidth: 92, sorter: "number",
    formatter: (c) => {
      const v = c.getValue();
      const stale = v === null || nowUs - v > 10e6;
      return `<span class="${stale ? "stale" : ""}">${esc(age(nowUs, v))}</span>`;
    } },
];

export function mount(main) {
  const search = h("input", { id: "sites-search", type: "search", placeholder: "Search site, model, fault, status…" });
  const oem = h("select", { id: "sites-oem" }, h("option", { value: "" }, "All OEMs"));
  const link = h("select", { id: "sites-link" }, h("option", { value: "" }, "Any link"),
    ...LINKS.map((l) => h("option", { value: l }, l)), h("option", { value: "-" }, "no status yet"));
  const result = h("select", { id: "sites-result" }, h("option", { value: "" }, "Any last command"),
    ...RESULTS.map((r) => h("option", { value: r }, r)));
  const faulted = h("input", { id: "sites-faulted", type: "checkbox" });
  const count = h("span", { id: "sites-count", class: "muted" }, "");
  const toolbar = h("div", { class: "toolbar" }, search, oem, link, result,
    h("label", { class: "check" }, faulted, " faulted only"), count,
    h("span", { class: "muted legend-note" }, "* baseline not reported yet: 0 kW assumed"));
  const holder = h("div", { id: "sites-table" });
  main.append(h("h2", { class: "view-title" }, "Sites"), toolbar, h("section", { class: "card flush" }, holder));

  let total = 0, built = false, pending = null, filterStarted = null;
  const oems = new Set();
  const table = new Tabulator(holder, {
    height: "calc(100vh - 230px)",
    layout: "fitColumns",
    index: "id",
    data: [],
    columns,
    columnDefaults: { headerWordWrap: true, headerSortTristate: false },
    initialSort: [{ column: "id", dir: "asc" }],
    placeholder: "No site has reported yet",
    renderVerticalBuffer: 400,
  });
  table.on("tableBuilt", () => {
    built = true;
    if (pending) { const p = pending; pending = null; apply(p.rows, p.snapshot); }
  });
  table.on("dataFiltered", (filters, rows) => {
    total = table.getDataCount();
    count.textContent = `${num(rows.length, 0)} of ${num(total, 0)} sites`;
    if (filterStarted !== null) {
      requestAnimationFrame(() => {
        performance.mark("sites-filtered");
        performance.measure("sites-filter", "sites-filter-start", "sites-filtered");
        filterStarted = null;
      });
    }
  });

  // the filter's inputs are read once per filtering, not once per row
  function matcher() {
    const o = oem.value, l = link.value, r = result.value, f = faulted.checked;
    const q = search.value.trim().toLowerCase();
    return (d) => {
      if (o && d.oem !== o) return false;
      if (l && (l === "-" ? d.link !== null : d.link !== l)) return false;
      if (r && d.result !== r) return false;
      if (f && !d.faulted) return false;
      if (!q) return true;
      return [d.id, d.model, d.oem, d.fault_text, d.result, d.link, d.mode, d.armed]
        .some((x) => x && String(x).toLowerCase().includes(q));
    };
  }
  const refilter = () => {
    performance.clearMarks("sites-filter-start");
    performance.mark("sites-filter-start");
    filterStarted = performance.now();
    table.setFilter(matcher());
  };
  for (const el of [oem, link, result, faulted]) el.addEventListener("change", refilter);
  search.addEventListener("input", refilter);

  function addOems(rows) {
    let added = false;
    for (const r of rows) if (r.oem && !oems.has(r.oem)) { oems.add(r.oem); added = true; }
    if (!added) return;
    const chosen = oem.value;
    oem.replaceChildren(h("option", { value: "" }, "All OEMs"),
      ...[...oems].sort().map((o) => h("option", { value: o }, o)));
    oem.value = chosen;
  }

  function apply(rows, snapshot) {
    addOems(rows);
    if (snapshot) {
      performance.mark("sites-snapshot");
      total = rows.length;
      table.replaceData(rows).then(() => {
        table.setFilter(matcher());
        requestAnimationFrame(() => {
          performance.mark("sites-rendered");
          performance.measure("sites-render", "sites-snapshot", "sites-rendered");
          main.dataset.rendered = "1";
        });
      });
      return;
    }
    if (!rows.length) {
      for (const row of table.getRows("visible")) row.reformat();
      return;
    }
    const before = table.getDataCount();
    table.updateOrAddData(rows).then(() => {
      total = table.getDataCount();
      if (total !== before) table.setSort(table.getSorters().map((s) => ({ column: s.field, dir: s.dir })));
      for (const row of table.getRows("visible")) row.reformat();
    });
  }

  // rows travel as lists in p.fields order
  const objects = (fields, rows) => rows.map((values) => {
    const row = {};
    for (let i = 0; i < fields.length; i++) row[fields[i]] = values[i];
    return row;
  });

  return {
    update(payload, snapshot) {
      const p = { ...payload, rows: objects(payload.fields, payload.rows) };
      nowUs = p.status.now;
      if (!built) { // the table is still building: keep the newest row per site
        const rows = snapshot || !pending ? new Map() : pending.byId;
        for (const r of p.rows) rows.set(r.id, r);
        pending = { byId: rows, rows: [...rows.values()], snapshot: snapshot || !!pending?.snapshot };
        return;
      }
      apply(p.rows, snapshot);
    },
    destroy() { table.destroy(); },
  };
}
