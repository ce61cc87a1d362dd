// memlane dashboard: plain JavaScript, no framework, no build step. Every action is a call to this server's
// /api routes with the key kept in sessionStorage, so it is authorised (and tenant-bound) as any client call.
const KEY = "memlane.key";
const JOBS = "memlane.jobs";
const PAGE = 20;
const SCOPE_FIELD = { user: "user_id", agent: "agent_id", run: "run_id" };

const $ = (sel, root = document) => root.querySelector(sel);
const view = () => $("#view");

// ------------------------------------------------------------------ DOM helper (text only, never innerHTML)

function h(tag, attrs = {}, ...children) {
  const svg = ["svg", "g", "circle", "line", "text", "title"].includes(tag);
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function say(message) {
  const s = $("#status");
  s.textContent = message;
  clearTimeout(say.timer);
  say.timer = setTimeout(() => { s.textContent = ""; }, 4000);
}

const when = (iso) => (iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", "Z") : "");
const json = (v) => (v && Object.keys(v).length ? JSON.stringify(v) : "");

// ------------------------------------------------------------------ the API

class ApiError extends Error {
  constructor(status, body) {
    const detail = body && body.detail !== undefined ? body.detail : body;
    super(`${status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
    this.status = status;
  }
}

async function api(method, path, body) {
  const key = sessionStorage.getItem(KEY);
  const init = { method, headers: { Authorization: `Token ${key}` } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (r.status === 401) { logout("Your key was refused; sign in again."); throw new ApiError(401, data); }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

// ------------------------------------------------------------------ sign in

function showLogin(message) {
  $("#nav").hidden = true;
  $("#login").hidden = false;
  view().replaceChildren();
  $("#login-error").textContent = message || "";
  $("#key").focus();
}

function logout(message) {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(JOBS);
  showLogin(message);
}

async function login(event) {
  event.preventDefault();
  const key = $("#key").value.trim();
  sessionStorage.setItem(KEY, key);
  try {
    await whoami();
    $("#key").value = "";
    route();
  } catch (e) {
    sessionStorage.removeItem(KEY);
    $("#login-error").textContent = e.status === 401 ? "That key was refused." : String(e.message);
  }
}

async function whoami() {
  const me = await api("GET", "/v1/ping/");  // answers the key's tenant
  $("#tenant").textContent = `tenant: ${me.org_id}`;
  $("#login").hidden = true;
  $("#nav").hidden = false;
}

// ------------------------------------------------------------------ router

const routes = [
  [/^#\/?$/, scopesView],
  [/^#\/scope\/(user|agent|run)\/(.+)$/, scopeView],
  [/^#\/memory\/([^/]+)$/, memoryView],
  [/^#\/graph\/(user|agent|run)\/(.+)$/, graphView],
  [/^#\/jobs$/, jobsView],
];

async function route() {
  if (!sessionStorage.getItem(KEY)) return showLogin();
  if ($("#nav").hidden) {
    try { await whoami(); } catch { return undefined; }
  }
  const hash = location.hash || "#/";
  for (const [pattern, render] of routes) {
    const m = hash.match(pattern);
    if (m) {
      view().replaceChildren(h("p", { class: "muted" }, "Loading…"));
      try {
        await render(...m.slice(1).map(decodeURIComponent));
      } catch (e) {
        if (e.status !== 401) view().replaceChildren(h("p", { class: "error", role: "alert" }, e.message));
      }
      return undefined;
    }
  }
  view().replaceChildren(h("p", { class: "error" }, "No such page."));
  return undefined;
}

function page(title, ...children) {
  const heading = h("h1", { tabindex: "-1" }, title);
  view().replaceChildren(heading, ...children);
  document.title = `${title} · memlane`;
  return heading;
}

const scopeHref = (type, name) => `#/scope/${type}/${encodeURIComponent(name)}`;
const scopeOf = (type, name) => ({ [SCOPE_FIELD[type]]: name });

// ------------------------------------------------------------------ scopes

async function scopesView() {
  const data = await api("GET", "/api/users");
  const rows = data.results;
  const state = { sort: "updated_at", desc: true };
  const filter = h("input", { type: "search", id: "scope-filter", placeholder: "Filter by name",
                              "aria-label": "Filter scopes by name" });
  const type = h("select", { id: "scope-type", "aria-label": "Scope type" },
    h("option", { value: "" }, "all types"), h("option", { value: "user" }, "users"),
    h("option", { value: "agent" }, "agents"), h("option", { value: "run" }, "runs"));
  const body = h("tbody");
  const cols = [["type", "Type"], ["name", "Name"], ["total_memories", "Memories"], ["updated_at", "Last activity"]];
  const head = h("tr", {}, cols.map(([key, label]) => h("th", { scope: "col" },
    h("button", { type: "button", "data-sort": key, onclick: () => {
      state.desc = state.sort === key ? !state.desc : key !== "name" && key !== "type";
      state.sort = key;
      draw();
    } }, label))));
  function draw() {
    const q = filter.value.trim().toLowerCase();
    const shown = rows.filter((r) => (!type.value || r.type === type.value) && r.name.toLowerCase().includes(q));
    const key = state.sort;
    shown.sort((a, b) => {
      const x = a[key] ?? "";
      const y = b[key] ?? "";
      const c = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
      return state.desc ? -c : c;
    });
    for (const th of head.querySelectorAll("button")) {
      const on = th.dataset.sort === key;
      th.parentElement.setAttribute("aria-sort", on ? (state.desc ? "descending" : "ascending") : "none");
    }
    body.replaceChildren(...shown.map((r) => h("tr", { class: "scope-row" },
      h("td", { "data-label": "Type" }, h("span", { class: "badge" }, r.type)),
      h("td", { "data-label": "Name" }, h("a", { href: scopeHref(r.type, r.name) }, r.name)),
      h("td", { class: "num", "data-label": "Memories" }, r.total_memories),
      h("td", { class: "when", "data-label": "Last activity" }, when(r.updated_at || r.created_at)))));
    if (!shown.length) body.append(h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No scopes.")));
  }
  filter.addEventListener("input", draw);
  type.addEventListener("change", draw);
  draw();
  page("Scopes", h("p", { class: "muted" }, "Users, agents and runs of this key's tenant."),
    h("div", { class: "row" }, filter, type),
    h("div", { class: "table-wrap" }, h("table", { class: "responsive", id: "scopes" }, h("thead", {}, head), body)));
}

// ------------------------------------------------------------------ one scope's memories

function parseFilters(text) {
  // "topic=food, lang=en" -> {"topic": "food", "lang": "en"}; a JSON object is taken as is.
  const t = text.trim();
  if (!t) return null;
  if (t.startsWith("{")) return JSON.parse(t);
  const out = {};
  for (const part of t.split(",")) {
    const [k, ...v] = part.split("=");
    if (!k.trim() || !v.length) throw new Error(`filter "${part.trim()}" is not key=value`);
    let value = v.join("=").trim();
    try { value = JSON.parse(value); } catch { /* a plain string */ }
    out[k.trim()] = value;
  }
  return out;
}

async function scopeView(type, name) {
  const scope = scopeOf(type, name);
  const state = { offset: 0, query: "", filters: null, selected: new Set() };
  const search = h("input", { type: "search", id: "search", placeholder: "Search memories",
                              "aria-label": "Search memories" });
  const filters = h("input", { type: "text", id: "filters", placeholder: "Metadata filter: key=value, …",
                               "aria-label": "Metadata filters (key=value, comma separated)" });
  const form = h("form", { class: "row", role: "search", onsubmit: (e) => {
    e.preventDefault();
    try { state.filters = parseFilters(filters.value); } catch (err) { say(err.message); return; }
    state.query = search.value.trim();
    state.offset = 0;
    load();
  } }, search, filters, h("button", { type: "submit", class: "primary" }, "Search"),
  h("button", { type: "button", onclick: () => { search.value = ""; filters.value = ""; form.requestSubmit(); } },
    "Clear"));
  const bulk = h("button", { type: "button", class: "danger", id: "bulk-delete", disabled: true, onclick: bulkDelete },
    "Delete selected");
  const table = h("div", { class: "table-wrap" });
  const pager = h("div", { class: "pager" });
  const summary = h("p", { class: "muted", id: "summary" });

  async function load() {
    state.selected.clear();
    let results;
    let total;
    const filt = state.filters ? { filters: state.filters } : {};
    if (state.query) {
      const r = await api("POST", "/api/memories/search", { query: state.query, ...scope, ...filt, limit: 50 });
      results = r.results;
      total = results.length;
    } else {
      const r = await api("POST", "/api/memories/list", { ...scope, ...filt, limit: PAGE, offset: state.offset });
      results = r.results;
      total = r.total;
    }
    summary.textContent = state.query ? `${total} results for “${state.query}”` : `${total} memories`;
    drawTable(results, Boolean(state.query));
    drawPager(total);
  }

  function drawPager(total) {
    pager.replaceChildren();
    if (state.query || total <= PAGE) return;
    const last = Math.max(0, Math.floor((total - 1) / PAGE) * PAGE);
    pager.append(
      h("button", { type: "button", disabled: state.offset === 0, onclick: () => { state.offset -= PAGE; load(); } },
        "‹ Previous"),
      h("span", {}, `${state.offset + 1}–${Math.min(total, state.offset + PAGE)} of ${total}`),
      h("button", { type: "button", disabled: state.offset >= last, onclick: () => { state.offset += PAGE; load(); } },
        "Next ›"));
  }

  function updateBulk() {
    bulk.disabled = state.selected.size === 0;
    bulk.textContent = state.selected.size ? `Delete selected (${state.selected.size})` : "Delete selected";
  }

  function drawTable(results, scored) {
    const cols = ["", "Memory", "Type", scored ? "Score" : null, "Metadata", "Event time", "Created", "Updated", ""];
    const all = h("input", { type: "checkbox", "aria-label": "Select all", onchange: (e) => {
      for (const box of table.querySelectorAll("tbody input[type=checkbox]")) {
        box.checked = e.target.checked;
        box.dispatchEvent(new Event("change"));
      }
    } });
    const rows = results.map((m) => memoryRow(m, scored));
    table.replaceChildren(h("table", { class: "responsive", id: "memories" },
      h("thead", {}, h("tr", {}, cols.filter((c) => c !== null).map((c, i) => h("th", { scope: "col" },
        i === 0 ? all : c)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 9, class: "muted" }, "No memories.")))));
    updateBulk();
  }

  function memoryRow(m, scored) {
    const box = h("input", { type: "checkbox", "aria-label": `Select “${m.memory}”`, onchange: (e) => {
      if (e.target.checked) state.selected.add(m.id); else state.selected.delete(m.id);
      updateBulk();
    } });
    const tr = h("tr", { class: "memory-row", "data-id": m.id });
    const cells = () => [
      h("td", {}, box),
      h("td", { class: "text", "data-label": "Memory" }, h("a", { href: `#/memory/${m.id}` }, m.memory)),
      h("td", { "data-label": "Type" }, h("span", { class: "badge" }, (m.memory_type || "").replace("_memory", ""))),
      scored ? h("td", { class: "num score", "data-label": "Score" }, Number(m.score).toFixed(3)) : null,
      h("td", { "data-label": "Metadata" }, h("code", {}, json(m.metadata))),
      h("td", { class: "when", "data-label": "Event time" }, when(m.timestamp)),
      h("td", { class: "when", "data-label": "Created" }, when(m.created_at)),
      h("td", { class: "when", "data-label": "Updated" }, when(m.updated_at)),
      h("td", { class: "actions" },
        h("button", { type: "button", class: "edit", onclick: edit, "aria-label": `Edit “${m.memory}”` }, "Edit"), " ",
        h("button", { type: "button", class: "danger delete", onclick: remove,
                      "aria-label": `Delete “${m.memory}”` }, "Delete")),
    ].filter(Boolean);
    tr.replaceChildren(...cells());

    function edit() {
      const text = h("textarea", { class: "edit-text", "aria-label": "Memory text" });
      text.value = m.memory;
      const meta = h("textarea", { class: "edit-metadata mono", "aria-label": "Metadata (JSON object)" });
      meta.value = JSON.stringify(m.metadata || {}, null, 1);
      const save = async (e) => {
        e.preventDefault();
        let metadata;
        try { metadata = JSON.parse(meta.value || "{}"); } catch { say("Metadata must be a JSON object."); return; }
        const changes = { metadata, replace_metadata: true };
        if (text.value.trim() !== m.memory) changes.text = text.value.trim();
        try {
          await api("PATCH", `/api/memories/${m.id}`, changes);
          Object.assign(m, await api("GET", `/api/memories/${m.id}`));
          say("Saved.");
          tr.replaceChildren(...cells());
          $(".edit", tr).focus();
        } catch (err) { say(err.message); }
      };
      const cancel = () => { tr.replaceChildren(...cells()); $(".edit", tr).focus(); };
      tr.replaceChildren(h("td", { colspan: 9 },
        h("form", { class: "edit-form", onsubmit: save, onkeydown: (e) => { if (e.key === "Escape") cancel(); } },
          h("label", {}, "Text", text), h("label", {}, "Metadata (JSON)", meta),
          h("div", { class: "row" }, h("button", { type: "submit", class: "primary save" }, "Save"),
            h("button", { type: "button", onclick: cancel }, "Cancel")))));
      text.focus();
    }

    async function remove() {
      if (!(await confirmDelete(`Delete “${m.memory}”?`))) return;
      try {
        await api("DELETE", `/api/memories/${m.id}`);
        say("Deleted.");
        load();
      } catch (err) { say(err.message); }
    }
    return tr;
  }

  async function bulkDelete() {
    const ids = [...state.selected];
    if (!(await confirmDelete(`Delete ${ids.length} memories?`))) return;
    try {
      await api("POST", "/api/batch/delete", { memories: ids.map((id) => ({ memory_id: id })) });
      say(`Deleted ${ids.length}.`);
      load();
    } catch (err) { say(err.message); }
  }

  const add = addForm(scope, load);
  page(`${type} ${name}`,
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Scopes"), " › ", name, " · ",
      h("a", { href: `#/graph/${type}/${encodeURIComponent(name)}`, id: "graph-link" }, "Graph")),
    form, h("div", { class: "row" }, summary, bulk), table, pager, add);
  await load();
}

function addForm(scope, reload) {
  const text = h("textarea", { id: "add-text", "aria-label": "New memory text", required: true });
  const meta = h("input", { type: "text", id: "add-metadata", placeholder: "{\"key\": \"value\"}",
                            "aria-label": "New memory metadata (JSON)" });
  const infer = h("input", { type: "checkbox", id: "add-infer" });
  const background = h("input", { type: "checkbox", id: "add-background" });
  return h("details", { class: "card" }, h("summary", {}, "Add a memory"),
    h("form", { onsubmit: async (e) => {
      e.preventDefault();
      try {
        const body = { messages: text.value, ...scope, infer: infer.checked, background: background.checked };
        if (meta.value.trim()) body.metadata = JSON.parse(meta.value);
        const r = await api("POST", "/api/memories", body);
        if (r.job_id) rememberJob(r.job_id);
        text.value = "";
        say(background.checked ? "Queued (see Jobs)." : "Added.");
        reload();
      } catch (err) { say(err.message); }
    } }, h("label", { for: "add-text" }, "Text"), text,
    h("label", { for: "add-metadata" }, "Metadata"), meta,
    h("div", { class: "row" }, h("label", {}, infer, " infer (extract facts with the LLM)"),
      h("label", {}, background, " in the background (a job)")),
    h("button", { type: "submit", class: "primary" }, "Add")));
}

function confirmDelete(text) {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = text;
  dialog.returnValue = "";
  dialog.showModal();
  $("#confirm-cancel").focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

// ------------------------------------------------------------------ one memory

function words(s) { return (s || "").split(/(\s+)/).filter((w) => w !== ""); }

function diff(oldText, newText) {
  // word-level LCS diff: <del> what went, <ins> what came
  const a = words(oldText);
  const b = words(newText);
  const n = a.length;
  const m = b.length;
  const L = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) L[i][j] = a[i] === b[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  }
  const ops = [];  // [kind, text], runs of one kind merged
  const push = (kind, text) => {
    const last = ops[ops.length - 1];
    if (last && last[0] === kind) last[1] += text; else ops.push([kind, text]);
  };
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) { push("", a[i]); i++; j++; }
    else if (i < n && (j >= m || L[i + 1][j] >= L[i][j + 1])) { push("del", a[i]); i++; }
    else { push("ins", b[j]); j++; }
  }
  return ops.map(([kind, text]) => (kind ? h(kind, {}, text) : text));
}

function metadataDiff(oldMeta, newMeta) {
  const o = oldMeta || {};
  const n = newMeta || {};
  const out = [];
  for (const k of new Set([...Object.keys(o), ...Object.keys(n)])) {
    const x = JSON.stringify(o[k]);
    const y = JSON.stringify(n[k]);
    if (x === y) continue;
    out.push(h("li", {}, h("code", {}, k), ": ", x === undefined ? "" : h("del", {}, x), " → ",
      y === undefined ? h("em", {}, "removed") : h("ins", {}, y)));
  }
  return out.length ? h("ul", { class: "meta-diff" }, out) : null;
}

function scopeParts(m) {
  for (const [type, field] of Object.entries(SCOPE_FIELD)) if (m[field]) return [type, m[field]];
  return [null, null];
}

async function memoryView(id) {
  const [m, history] = await Promise.all([api("GET", `/api/memories/${id}`), api("GET", `/api/memories/${id}/history`)]);
  const [type, name] = scopeParts(m);
  const scope = { user_id: m.user_id || undefined, agent_id: m.agent_id || undefined, run_id: m.run_id || undefined };
  const timeline = h("ol", { class: "timeline", id: "history" }, history.map((e) => h("li", { class: "history-event" },
    h("span", { class: "event" }, e.event), " ", h("span", { class: "muted when" }, when(e.created_at)),
    h("div", { class: "diff" }, e.event === "ADD" ? h("ins", {}, e.new_memory) : diff(e.old_memory, e.new_memory)),
    metadataDiff(e.old_metadata, e.new_metadata))));

  const provenance = h("div", { id: "provenance" }, h("p", { class: "muted" }, "Loading…"));
  const relations = h("div", { id: "relations" });
  page("Memory",
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Scopes"), type ? [" › ", h("a", { href: scopeHref(type, name) },
      name)] : null),
    h("div", { class: "card" },
      h("p", { id: "memory-text" }, m.memory),
      h("dl", { class: "props" },
        h("dt", {}, "id"), h("dd", { class: "mono" }, m.id),
        h("dt", {}, "type"), h("dd", {}, m.memory_type),
        h("dt", {}, "scope"), h("dd", {}, [m.user_id && `user ${m.user_id}`, m.agent_id && `agent ${m.agent_id}`,
          m.run_id && `run ${m.run_id}`].filter(Boolean).join(" · ")),
        h("dt", {}, "metadata"), h("dd", {}, h("code", {}, json(m.metadata) || "—")),
        h("dt", {}, "event time"), h("dd", {}, when(m.timestamp) || "—"),
        h("dt", {}, "created / updated"), h("dd", {}, `${when(m.created_at)} / ${when(m.updated_at) || "—"}`))),
    h("div", { class: "memory-grid" },
      h("section", {}, h("h2", {}, "History"), timeline),
      h("section", {}, h("h2", {}, "Provenance"), provenance, h("h2", {}, "Relations"), relations)));

  // provenance: the messages it came from, in their conversation (a few messages either side)
  const ids = m.source_message_ids || [];
  if (!ids.length) provenance.replaceChildren(h("p", { class: "muted" }, "No source messages recorded."));
  else {
    try {
      const sources = await api("POST", "/api/messages", { message_ids: ids });
      const log = await api("POST", "/api/messages/log", { ...scope, limit: 1000 });
      const all = log.results;
      // the conversation: the messages of the same add() call (one created_at), else a few either side
      const at = sources.map((s) => all.findIndex((x) => x.id === s.id)).filter((i) => i >= 0);
      const calls = new Set(sources.map((s) => s.created_at));
      const sameCall = all.filter((x) => calls.has(x.created_at));
      let shown = sources;
      if (sameCall.length > sources.length) shown = sameCall;
      else if (at.length) shown = all.slice(Math.max(0, Math.min(...at) - 2), Math.max(...at) + 3);
      provenance.replaceChildren(h("ol", { class: "messages" }, shown.map((msg) => h("li", {
        class: ids.includes(msg.id) ? "source" : "context" },
      h("span", { class: "role" }, msg.role + (msg.actor_id ? ` (${msg.actor_id})` : "")), msg.content, " ",
      h("span", { class: "muted when" }, when(msg.timestamp || msg.created_at)),
      ids.includes(msg.id) ? h("span", { class: "badge" }, "source") : null))));
    } catch (err) {
      provenance.replaceChildren(h("p", { class: "error" }, err.message));
    }
  }

  // relations of the scope's graph whose entities this memory names
  try {
    const r = await api("POST", "/api/relations", scope);
    const text = m.memory.toLowerCase();
    const mine = r.relations.filter((x) => text.includes(String(x.source).toLowerCase().replace(/_/g, " "))
      || text.includes(String(x.target).toLowerCase().replace(/_/g, " ")));
    relations.replaceChildren(mine.length
      ? h("ul", {}, mine.map((x) => h("li", { class: "relation" }, `${x.source} — ${x.relationship} → ${x.target}`,
        h("span", { class: "muted" }, ` since ${when(x.valid_from)}`))))
      : h("p", { class: "muted" }, "No relations name this memory's entities."),
    type ? h("p", {}, h("a", { href: `#/graph/${type}/${encodeURIComponent(name)}` }, "Open the scope's graph")) : null);
  } catch (err) {
    relations.replaceChildren(h("p", { class: "error" }, err.message));
  }
}

// ------------------------------------------------------------------ graph

async function graphView(type, name) {
  const scope = scopeOf(type, name);
  const asOf = h("input", { type: "datetime-local", id: "as-of", "aria-label": "As of (UTC)" });
  const holder = h("div", { id: "graph" });
  const panel = h("div", { class: "card", id: "entity-panel" },
    h("p", { class: "muted" }, "Select an entity (click, or Tab and Enter) to see its relations and memories."));
  const form = h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); load(); } },
    h("label", { for: "as-of" }, "As of"), asOf, h("button", { type: "submit" }, "Show"),
    h("button", { type: "button", onclick: () => { asOf.value = ""; load(); } }, "Now"));
  page(`Graph of ${type} ${name}`,
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Scopes"), " › ", h("a", { href: scopeHref(type, name) }, name),
      " › graph"), form, h("div", { class: "graph-layout" }, holder, panel));

  async function load() {
    const body = { ...scope };
    if (asOf.value) body.as_of = `${asOf.value}:00Z`.replace(/:00:00Z$/, ":00Z");
    const r = await api("POST", "/api/relations", body);
    draw(r.relations);
  }

  function draw(rels) {
    const names = [...new Set(rels.flatMap((x) => [x.source, x.target]))].sort();
    if (!names.length) {
      holder.replaceChildren(h("p", { class: "muted", id: "graph-empty" },
        "No relations in this scope (graph memory needs a graph_store and an LLM)."));
      return;
    }
    const W = 640;
    const H = 480;
    const R = Math.min(W, H) / 2 - 70;
    const pos = new Map(names.map((n, i) => {
      const a = (2 * Math.PI * i) / names.length - Math.PI / 2;
      return [n, [W / 2 + R * Math.cos(a), H / 2 + R * Math.sin(a)]];
    }));
    const edges = rels.map((x) => {
      const [x1, y1] = pos.get(x.source);
      const [x2, y2] = pos.get(x.target);
      return h("g", { class: "edge" }, h("line", { x1, y1, x2, y2 }),
        h("text", { class: "edge-label", x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 4, "text-anchor": "middle" },
          x.relationship));
    });
    const nodes = names.map((n) => {
      const [x, y] = pos.get(n);
      const g = h("g", { class: "node", tabindex: "0", role: "button", "data-name": n, "aria-label": `Entity ${n}`,
                        onclick: () => select(n, g),
                        onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); select(n, g); } } },
      h("circle", { cx: x, cy: y, r: 18 }),
      h("text", { x, y: y + 34, "text-anchor": "middle" }, n));
      return g;
    });
    holder.replaceChildren(h("svg", { class: "graph", viewBox: `0 0 ${W} ${H}`, role: "img",
                                      "aria-label": `Graph: ${names.length} entities, ${rels.length} relations` },
    edges, nodes),
    h("details", {}, h("summary", {}, `${rels.length} relations as a list`),
      h("ul", {}, rels.map((x) => h("li", {}, `${x.source} — ${x.relationship} → ${x.target} (${when(x.valid_from)}`
        + `${x.valid_to ? ` – ${when(x.valid_to)}` : ""})`)))));

    async function select(n, g) {
      for (const other of holder.querySelectorAll(".node")) other.classList.remove("selected");
      g.classList.add("selected");
      const mine = rels.filter((x) => x.source === n || x.target === n);
      panel.replaceChildren(h("h2", {}, n),
        h("ul", {}, mine.map((x) => h("li", {}, `${x.source} — ${x.relationship} → ${x.target}`))),
        h("h2", {}, "Memories"), h("p", { class: "muted" }, "Loading…"));
      const found = await api("POST", "/api/memories/search", { query: mine.map((x) => `${x.source} ${x.relationship}`
        + ` ${x.target}`).join(". ") || n, ...scope, limit: 5 });
      const hits = found.results.filter((m, i) => i === 0 || m.score >= 0.05);
      panel.lastChild.replaceWith(hits.length
        ? h("ul", { id: "entity-memories" }, hits.map((m) => h("li", {},
          h("a", { href: `#/memory/${m.id}` }, m.memory), h("span", { class: "muted" }, ` ${Number(m.score).toFixed(2)}`))))
        : h("p", { class: "muted" }, "No memories found."));
    }
  }
  await load();
}

// ------------------------------------------------------------------ jobs

function knownJobs() {
  try { return JSON.parse(sessionStorage.getItem(JOBS) || "[]"); } catch { return []; }
}

function rememberJob(id) {
  const jobs = knownJobs().filter((j) => j !== id);
  jobs.unshift(id);
  sessionStorage.setItem(JOBS, JSON.stringify(jobs.slice(0, 50)));
}

async function jobsView() {
  const input = h("input", { type: "text", id: "job-id", placeholder: "Job id", "aria-label": "Job id",
                             class: "mono" });
  const body = h("tbody");
  const table = h("table", { class: "responsive", id: "jobs" }, h("thead", {}, h("tr", {},
    ["Job", "Status", "Attempts", "Error", "Result", ""].map((c) => h("th", { scope: "col" }, c)))), body);
  page("Jobs",
    h("p", { class: "muted" }, "Background adds (background: true) queued from this tab, and any job you look up by id."),
    h("form", { class: "row", onsubmit: (e) => {
      e.preventDefault();
      if (input.value.trim()) rememberJob(input.value.trim());
      input.value = "";
      draw();
    } }, input, h("button", { type: "submit" }, "Look up"), h("button", { type: "button", onclick: () => draw() },
      "Refresh")),
    h("div", { class: "table-wrap" }, table));

  async function draw() {
    const ids = knownJobs();
    const jobs = await Promise.all(ids.map((id) => api("GET", `/api/jobs/${encodeURIComponent(id)}`)
      .catch((err) => ({ id, status: "unknown", last_error: err.message }))));
    body.replaceChildren(...jobs.map((j) => h("tr", { class: "job-row", "data-status": j.status },
      h("td", { class: "mono", "data-label": "Job" }, j.id || j.job_id),
      h("td", { "data-label": "Status" }, h("span", { class: "badge" }, j.status)),
      h("td", { class: "num", "data-label": "Attempts" }, j.attempts ?? ""),
      h("td", { class: "error", "data-label": "Error" }, j.last_error || ""),
      h("td", { "data-label": "Result" }, j.result ? `${(j.result.results || []).length} memories` : ""),
      h("td", {}, j.status === "failed" ? h("button", { type: "button", class: "retry", onclick: async () => {
        try { await api("POST", `/api/jobs/${encodeURIComponent(j.id || j.job_id)}/retry`); say("Queued again."); }
        catch (err) { say(err.message); }
        draw();
      } }, "Retry") : null))));
    if (!jobs.length) body.append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No jobs yet.")));
  }
  await draw();
}

// ------------------------------------------------------------------ start

$("#login-form").addEventListener("submit", login);
$("#logout").addEventListener("click", () => { logout("Signed out."); location.hash = "#/"; });
window.addEventListener("hashchange", () => { route(); $("#main").focus({ preventScroll: true }); });
route();
