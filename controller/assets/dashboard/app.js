// meshlift dashboard: reads /api/v1 with the token typed in once (sessionStorage, this tab
// only), draws the mesh as SVG and follows /api/v1/events. No libraries, no network but ours.
"use strict";

const KEY = "meshlift-token";
const SVG = "http://www.w3.org/2000/svg";
const W = 1000, H = 640, PAD = 60;
const $ = (sel) => document.querySelector(sel);

const S = {
  token: sessionStorage.getItem(KEY),
  map: null,          // /api/v1/map
  nodes: new Map(),   // name -> node row (/api/v1/nodes)
  state: null,        // /api/v1/state
  plan: null,         // /api/v1/commit-plan
  planAt: 0,
  pos: new Map(),     // node name -> {x, y}
  selected: null,
  hoverBatch: null,
  events: null,
  refreshTimer: null,
};

async function api(path, opts = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + S.token }, opts.headers || {});
  const r = await fetch(path, Object.assign({}, opts, { headers }));
  if (r.status === 401) { logout("the controller does not know this token"); throw new Error("401"); }
  const body = r.headers.get("content-type")?.includes("json") ? await r.json() : await r.text();
  if (!r.ok) throw new Error(body.detail || body.title || String(r.status));
  return body;
}

function logout(why) {
  sessionStorage.removeItem(KEY);
  S.token = null;
  if (S.events) { S.events.close(); S.events = null; }
  $("#main").hidden = true; $("#logout").hidden = true; $("#login").hidden = false;
  $("#who").textContent = "";
  $("#login-error").textContent = why || "";
}

async function login(token) {
  S.token = token;
  try {
    const me = await api("/api/v1/whoami");
    sessionStorage.setItem(KEY, token);
    $("#who").textContent = me.name + " (" + me.role + ")";
    $("#login").hidden = true; $("#main").hidden = false; $("#logout").hidden = false;
    await loadAll();
    follow();
  } catch (e) {
    if (S.token) logout("token refused: " + e.message);
  }
}

async function loadAll() {
  S.map = await api("/api/v1/map");
  $("#mesh-name").textContent = S.map.name;
  layout();
  await Promise.all([loadNodes(), loadState(), loadJournal()]);
  draw();
  loadPlan();
}

async function loadNodes() {
  let offset = 0;
  const rows = [];
  for (;;) {
    const page = await api("/api/v1/nodes?limit=1000&offset=" + offset);
    rows.push(...page.nodes);
    offset += page.nodes.length;
    if (offset >= page.total || page.nodes.length === 0) break;
  }
  S.nodes = new Map(rows.map((n) => [n.name, n]));
}

async function loadState() { S.state = await api("/api/v1/state"); }

async function loadJournal() {
  const lines = await api("/api/v1/journal?last=30&limit=30");
  const ol = $("#journal");
  ol.replaceChildren(...lines.reverse().map((l) => {
    const li = document.createElement("li");
    const who = l.who ? l.who + ": " : "";
    li.textContent = new Date(l.at).toLocaleTimeString() + " " + who + l.message;
    return li;
  }));
}

// The dry run is a planner run on the controller: at most every 5 s.
async function loadPlan() {
  if (Date.now() - S.planAt < 5000) return;
  S.planAt = Date.now();
  // While a request runs, the dry run of its version (what is left to commit); else of every node.
  const version = S.state?.current?.version;
  const body = JSON.stringify(version ? { version } : {});
  try { S.plan = await api("/api/v1/commit-plan", { method: "POST", body, headers: { "Content-Type": "application/json" } }); }
  catch (e) { S.plan = null; }
  drawPlan(); draw();
}

// Sites at their coordinates; without coordinates for every site, a force layout of the site
// graph (deterministic: starts on a circle in name order).
function layout() {
  const sites = S.map.sites;
  const located = sites.every((s) => s.latitude != null && s.longitude != null);
  const at = new Map();
  if (located && sites.length > 1) {
    const lat = sites.map((s) => s.latitude), lon = sites.map((s) => s.longitude);
    const [a0, a1, o0, o1] = [Math.min(...lat), Math.max(...lat), Math.min(...lon), Math.max(...lon)];
    for (const s of sites) {
      at.set(s.name, {
        x: PAD + (W - 2 * PAD) * (o1 > o0 ? (s.longitude - o0) / (o1 - o0) : 0.5),
        y: PAD + (H - 2 * PAD) * (a1 > a0 ? (a1 - s.latitude) / (a1 - a0) : 0.5),
      });
    }
  } else {
    forceLayout(sites, at);
  }
  S.pos.clear();
  const bySite = new Map();
  for (const n of S.map.nodes) {
    if (!bySite.has(n.site)) bySite.set(n.site, []);
    bySite.get(n.site).push(n.name);
  }
  for (const [site, names] of bySite) {
    const c = at.get(site) || { x: W / 2, y: H / 2 };
    names.sort();
    names.forEach((name, i) => {
      const r = names.length > 1 ? 16 : 0, t = (2 * Math.PI * i) / names.length - Math.PI / 2;
      S.pos.set(name, { x: c.x + r * Math.cos(t), y: c.y + r * Math.sin(t) });
    });
  }
  S.sitePos = at;
}

function forceLayout(sites, at) {
  const names = sites.map((s) => s.name).sort();
  const idx = new Map(names.map((n, i) => [n, i]));
  const siteOf = new Map(S.map.nodes.map((n) => [n.name, n.site]));
  const edges = [];
  for (const l of S.map.links) {
    const a = idx.get(siteOf.get(l.a)), b = idx.get(siteOf.get(l.z));
    if (a !== undefined && b !== undefined && a !== b) edges.push([a, b]);
  }
  const p = names.map((_, i) => ({ x: W / 2 + 250 * Math.cos((2 * Math.PI * i) / names.length), y: H / 2 + 200 * Math.sin((2 * Math.PI * i) / names.length) }));
  const k = Math.sqrt((W * H) / Math.max(names.length, 1)) * 0.6;
  for (let it = 0; it < 300; it++) {
    const d = p.map(() => ({ x: 0, y: 0 }));
    for (let i = 0; i < p.length; i++) for (let j = i + 1; j < p.length; j++) {
      const dx = p[i].x - p[j].x, dy = p[i].y - p[j].y, dist = Math.max(Math.hypot(dx, dy), 1), f = (k * k) / dist;
      d[i].x += (dx / dist) * f; d[i].y += (dy / dist) * f; d[j].x -= (dx / dist) * f; d[j].y -= (dy / dist) * f;
    }
    for (const [a, b] of edges) {
      const dx = p[a].x - p[b].x, dy = p[a].y - p[b].y, dist = Math.max(Math.hypot(dx, dy), 1), f = (dist * dist) / k;
      d[a].x -= (dx / dist) * f; d[a].y -= (dy / dist) * f; d[b].x += (dx / dist) * f; d[b].y += (dy / dist) * f;
    }
    const t = 30 * (1 - it / 300) + 1;
    p.forEach((q, i) => { const m = Math.max(Math.hypot(d[i].x, d[i].y), 1); q.x += (d[i].x / m) * Math.min(m, t); q.y += (d[i].y / m) * Math.min(m, t); });
  }
  const xs = p.map((q) => q.x), ys = p.map((q) => q.y);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  names.forEach((n, i) => at.set(n, {
    x: PAD + (W - 2 * PAD) * (x1 > x0 ? (p[i].x - x0) / (x1 - x0) : 0.5),
    y: PAD + (H - 2 * PAD) * (y1 > y0 ? (p[i].y - y0) / (y1 - y0) : 0.5),
  }));
}

function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// Which planned batch each node is in, and the nodes of the selected node's AP group.
function planMarks() {
  const planned = new Set(), apGroup = new Set();
  const batches = S.plan ? S.plan.batches : [];
  let focus = S.hoverBatch;
  if (focus == null && S.selected) focus = batches.findIndex((b) => b.includes(S.selected));
  if (focus != null && focus >= 0 && batches[focus]) batches[focus].forEach((n) => planned.add(n));
  if (S.selected && S.plan) {
    const site = S.nodes.get(S.selected)?.site;
    for (const [ap, cut] of Object.entries(S.plan.ap_groups)) {
      if (ap === site || cut.includes(site)) {
        const sites = new Set([ap, ...cut]);
        for (const n of S.map.nodes) if (sites.has(n.site)) apGroup.add(n.name);
      }
    }
  }
  return { planned, apGroup };
}

function draw() {
  if (!S.map) return;
  const svg = $("#map");
  const inBatch = new Set((S.state?.batch || []).map((b) => b.node));
  const { planned, apGroup } = planMarks();
  const kids = [];
  for (const l of S.map.links) {
    const a = S.pos.get(l.a), z = S.pos.get(l.z);
    if (!a || !z) continue;
    const line = el("line", { x1: a.x, y1: a.y, x2: z.x, y2: z.y, class: "link " + (l.alive ? "alive" : "dead") + (l.wireless ? "" : " wired"), "data-link": l.name });
    line.appendChild(el("title", {}, l.name + (l.alive ? " (up)" : " (down)")));
    kids.push(line);
  }
  for (const [site, c] of S.sitePos) kids.push(el("text", { x: c.x + 20, y: c.y - 18, class: "site-label" }, site));
  for (const n of S.map.nodes) {
    const p = S.pos.get(n.name), row = S.nodes.get(n.name) || {};
    const st = row.state || "unknown";
    let cls = "node st-" + st;
    if (inBatch.has(n.name)) cls += " in-batch";
    if (planned.has(n.name)) cls += " planned";
    if (apGroup.has(n.name)) cls += " ap-group";
    if (S.selected === n.name) cls += " selected";
    if (row.online === false) cls += " offline";
    const g = el("g", { class: cls, "data-node": n.name, "data-state": st, "data-version": row.version || "" });
    const c = el("circle", { cx: p.x, cy: p.y, r: n.pop ? 11 : 8, class: "st-" + st });
    c.appendChild(el("title", {}, n.name + ": " + st + " " + (row.version || "")));
    g.appendChild(c);
    g.appendChild(el("text", { x: p.x - 10, y: p.y + 20, class: "ver" }, row.version || ""));
    g.addEventListener("click", () => select(n.name));
    kids.push(g);
  }
  svg.replaceChildren(...kids);
  drawTable(inBatch);
  drawProgress();
  drawDetail();
}

function drawTable(inBatch) {
  const tb = $("#nodes tbody");
  const rows = [...S.nodes.values()].map((n) => {
    const tr = document.createElement("tr");
    tr.dataset.node = n.name; tr.dataset.state = n.state || "unknown"; tr.dataset.version = n.version || "";
    if (S.selected === n.name) tr.className = "selected";
    const seen = n.last_seen ? Math.max(0, Math.round((Date.now() - n.last_seen) / 1000)) + " s ago" : "never";
    for (const v of [n.name + (inBatch.has(n.name) ? " ●" : ""), n.site, n.state || "unknown", n.version || "", n.online ? "yes" : "no", seen]) {
      const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
    }
    tr.addEventListener("click", () => select(n.name));
    return tr;
  });
  tb.replaceChildren(...rows);
}

function drawProgress() {
  const st = S.state;
  const cur = st && st.current;
  if (!cur) {
    const last = st && st.finished.length ? st.finished[st.finished.length - 1] : null;
    $("#request").textContent = last ? "Idle. Last request " + last.request_id + ": " + last.summary : "No request running.";
    $("#progress-bar").style.width = last ? "100%" : "0";
    $("#progress-text").textContent = "";
    return;
  }
  const done = st.outcomes.filter((o) => o.request_id === cur.request_id && o.stage === cur.stage);
  const waiting = st.batch.filter((b) => !done.some((o) => o.node === b.node)).length;
  const total = done.length + waiting + st.pending_nodes.length;
  $("#request").textContent = "Request " + cur.request_id + " (" + cur.type + ", " + cur.stage + " stage) by " + cur.who + (cur.reason ? " — " + cur.reason : "");
  $("#progress-bar").style.width = (total ? (100 * done.length) / total : 0) + "%";
  $("#progress-text").textContent = "batch " + st.batch_index + ": " + done.length + "/" + total + " nodes done, " + waiting + " in flight, " + st.pending_nodes.length + " waiting";
}

function drawDetail() {
  const box = $("#detail");
  const n = S.selected && S.nodes.get(S.selected);
  if (!n) return;
  const dl = document.createElement("dl");
  const add = (k, v) => { const dt = document.createElement("dt"); dt.textContent = k; const dd = document.createElement("dd"); dd.textContent = v; dl.append(dt, dd); };
  add("node", n.name); add("site", n.site + (n.pop ? " (POP)" : "")); add("state", n.state || "unknown");
  add("version", n.version || "—"); add("online", n.online ? "yes" : "no");
  if (n.reason) add("reason", n.reason);
  if (n.request_id) add("request", n.request_id);
  if (n.progress_ppm != null) add("download", (n.progress_ppm / 10000).toFixed(1) + " %");
  if (n.slots) {
    for (const s of [n.slots.a, n.slots.b]) add("slot " + s.slot, (s.version || "empty") + (s.confirmed ? ", confirmed" : "") + (n.slots.booted === s.slot ? ", booted" : "") + (n.slots.active === s.slot ? ", active" : ""));
  }
  add("last seen", n.last_seen ? new Date(n.last_seen).toLocaleTimeString() : "never");
  const b = S.plan ? S.plan.batches.findIndex((x) => x.includes(n.name)) : -1;
  add("planned batch", b >= 0 ? String(b + 1) : "—");
  const h = document.createElement("h2"); h.textContent = "Node";
  box.replaceChildren(h, dl);
}

function drawPlan() {
  const body = $("#plan-body");
  if (!S.plan) { body.textContent = "—"; return; }
  const items = S.plan.batches.slice(0, 8).map((b, i) => {
    const li = document.createElement("li");
    li.textContent = b.join(", ");
    li.addEventListener("mouseenter", () => { S.hoverBatch = i; draw(); });
    li.addEventListener("mouseleave", () => { S.hoverBatch = null; draw(); });
    return li;
  });
  const ol = document.createElement("ol"); ol.append(...items);
  const cost = S.plan.costs[0];
  const p = document.createElement("p"); p.className = "hint";
  p.textContent = (S.state?.current?.version ? "Dry run of " + S.state.current.version + ": " : "Dry run, every node: ") + (S.plan.batches.length ? S.plan.batches.length + " commit batches" + (cost ? ", worst blast radius " + cost.largest_blast_radius + " sites" : "") + ". Hover a batch to see it." : "Nothing to commit.");
  body.replaceChildren(p, ol);
}

function select(name) { S.selected = S.selected === name ? null : name; draw(); }

function scheduleRefresh() {
  if (S.refreshTimer) return;
  S.refreshTimer = setTimeout(async () => {
    S.refreshTimer = null;
    try { await Promise.all([loadState(), loadJournal()]); draw(); loadPlan(); } catch (e) { /* shown by the next success */ }
  }, 300);
}

function follow() {
  if (S.events) S.events.close();
  const es = new EventSource("/api/v1/events?access_token=" + encodeURIComponent(S.token));
  S.events = es;
  es.addEventListener("open", () => { $("#conn").className = "conn on"; $("#conn").textContent = "live"; });
  es.addEventListener("error", () => { $("#conn").className = "conn off"; $("#conn").textContent = "reconnecting"; });
  es.addEventListener("nodes", (m) => {
    for (const c of JSON.parse(m.data).nodes) {
      const row = S.nodes.get(c.name);
      if (row) Object.assign(row, { state: c.state, version: c.version, online: c.online });
    }
    draw();
    scheduleRefresh();
  });
  es.addEventListener("engine", scheduleRefresh);
  es.addEventListener("lagged", () => loadAll());
}

// Slow refresh of what has no event of its own: link liveness, slots, last seen.
setInterval(async () => {
  if (!S.token || !S.map) return;
  try { S.map = await api("/api/v1/map"); await loadNodes(); draw(); } catch (e) { /* next time */ }
}, 5000);

const LEGEND = [["NONE", "#b0bec5"], ["downloading", "#4fc3f7"], ["FLASHED", "#1e88e5"], ["rebooting / trial", "#ffb300"],
  ["CONFIRMED", "#43a047"], ["failed / fell back", "#e53935"], ["no report", "#eceff1"]];

document.addEventListener("DOMContentLoaded", () => {
  $("#legend").replaceChildren(...LEGEND.map(([label, color]) => {
    const sp = document.createElement("span"); sp.textContent = label; sp.style.color = color; return sp;
  }), Object.assign(document.createElement("em"), { textContent: "orange ring: current batch; purple: planned batch / AP group" }));
  $("#login").addEventListener("submit", (e) => { e.preventDefault(); login($("#token").value.trim()); });
  $("#logout").addEventListener("click", () => logout());
  if (S.token) login(S.token); else logout();
});
