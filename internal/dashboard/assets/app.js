// ringmesh dashboard. Every value a node reported is untrusted: it is only
// ever put into the page with textContent, never parsed as markup.
"use strict";
(function () {
  const POLL_MS = 2000, PAGE = 100, STALE_S = 10, AUDIT_MS = 10000;
  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem("ringmesh-token") || "";
  let rows = [], summary = null, lastOK = 0, lastErr = "";
  let sortKey = "Node", sortDir = 1, page = 0;
  let auditNode = "", auditAt = 0;
  let syncNode = "", syncAt = 0;
  const SYNC_MS = 10000;
  let costs = null, costAt = 0;
  const COST_MS = 30000;

  // #token=… (the fragment never reaches the server) is kept for this tab.
  function route() {
    const h = new URLSearchParams(location.hash.slice(1));
    if (h.get("token")) {
      token = h.get("token");
      sessionStorage.setItem("ringmesh-token", token);
      h.delete("token");
      history.replaceState(null, "", h.toString() ? "#" + h.toString() : location.pathname);
    }
    return h.get("node") || "";
  }

  async function get(url) {
    const opts = token ? { headers: { Authorization: "Bearer " + token } } : {};
    const r = await fetch(url, opts);
    if (!r.ok) throw new Error(url.split("?")[0] + ": HTTP " + r.status + (r.status === 401 ? " (open the page with #token=<http token>)" : ""));
    return r.json();
  }

  async function post(url, body) {
    const headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    const r = await fetch(url, { method: "POST", headers: headers, body: JSON.stringify(body) });
    const text = await r.text();
    if (!r.ok) throw new Error(text.trim() || "HTTP " + r.status);
    return JSON.parse(text);
  }

  // Actions take the same path as meshctl's (the coordinator API, its
  // leader and gates); stop and terminate show the gates' decision from a
  // dry run first and, like meshctl, ask for the node ID to be typed.
  async function action(op) {
    const node = route(), out = $("a-result");
    if (!node) return;
    out.textContent = "";
    try {
      if (op === "sync") {
        if (!window.confirm("Sync node " + node + " now? Its agent pushes its unsynced data to its targets.")) {
          out.textContent = "not confirmed; nothing done";
          return;
        }
        out.textContent = (await post("/api/dashboard/act", { node: node, op: "sync" })).message;
        syncAt = 0; // its result shows in the sync history: look again soon
        return;
      }
      const dry = await post("/api/dashboard/act", { node: node, op: op, dry_run: true });
      const typed = window.prompt("Dry run: " + dry.message + "\n\n" + op + " node " + node + "? Type the node ID to confirm:", "");
      if (typed !== node) {
        out.textContent = "not confirmed; nothing done";
        return;
      }
      out.textContent = (await post("/api/dashboard/act", { node: node, op: op, reason: "dashboard request" })).message;
    } catch (e) {
      out.textContent = "refused: " + String(e && e.message ? e.message : e);
    }
  }

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }
  function bytes(n) {
    if (n === null || n === undefined) return "?";
    const u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let i = 0, v = Number(n);
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return (i ? v.toFixed(1) : String(v)) + " " + u[i];
  }
  function pct(v) { return v === null || v === undefined ? "?" : v.toFixed(0) + "%"; }
  function ago(s) {
    if (s === null || s === undefined) return "never";
    s = Math.max(0, Math.floor(s));
    if (s < 60) return s + "s ago";
    if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s ago";
    return Math.floor(s / 3600) + "h" + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m ago";
  }

  let busy = false;
  async function poll() {
    if (busy) return; // a slow refresh is not stacked on
    busy = true;
    const node = route();
    try {
      let off = 0, all = [], s;
      for (let i = 0; i < 1000; i++) {
        s = await get("/api/dashboard?offset=" + off + "&limit=2000");
        all = all.concat(s.rows || []);
        if (!s.next_offset || s.next_offset <= off) break;
        off = s.next_offset;
      }
      summary = s; rows = all; lastOK = Date.now(); lastErr = "";
      if (!node && Date.now() - costAt > COST_MS) { costs = await get("/api/dashboard/cost"); costAt = Date.now(); }
      if (node) renderNode(await get("/api/dashboard/node?node=" + encodeURIComponent(node)));
      if (!node) { auditNode = ""; syncNode = ""; } else {
        const due = [];
        if (node !== auditNode || Date.now() - auditAt > AUDIT_MS) due.push(loadAudit(node));
        if (node !== syncNode || Date.now() - syncAt > SYNC_MS) due.push(loadSync(node));
        await Promise.all(due);
      }
    } catch (e) {
      lastErr = String(e && e.message ? e.message : e);
    } finally {
      busy = false;
    }
    render(node);
  }

  function render(node) {
    $("nodes-view").hidden = !!node;
    $("cost-box").hidden = !!node;
    $("node-view").hidden = !node;
    renderBanner();
    if (!summary) return;
    $("meta").textContent = "coordinator " + summary.coordinator + " · leader " + (summary.leader || "none") +
      " · suspect after " + summary.thresholds.suspect_after_seconds + "s, dead after " + summary.thresholds.dead_after_seconds + "s";
    $("updated").textContent = "data of " + new Date(summary.generated_at).toISOString().replace("T", " ").slice(0, 19) + " UTC";
    const c = $("counts"); clear(c);
    c.appendChild(el("span", summary.total + " nodes"));
    Object.keys(summary.counts || {}).sort().forEach((k) => c.appendChild(el("span", k + " " + summary.counts[k], k)));
    if (summary.quarantined) c.appendChild(el("span", "quarantined " + summary.quarantined, "dead"));
    renderVoters();
    if (!node) { renderTable(); renderCost(); }
  }

  function renderBanner() {
    const msgs = [];
    const age = lastOK ? (Date.now() - lastOK) / 1000 : Infinity;
    if (lastErr) msgs.push("cannot refresh: " + lastErr);
    if (age > STALE_S) msgs.push(lastOK ? "stale data: last successful refresh " + Math.floor(age) + "s ago" : "no data yet");
    if (summary) {
      const v = summary.voters || [];
      const healthy = v.filter((x) => x.state === "healthy").length;
      const q = summary.quorum_size; // 0: a single coordinator, no election
      if (q > 0 && healthy < Math.floor(q / 2) + 1) msgs.push("no quorum: " + healthy + " of " + q + " voters healthy");
      else if (q > 0 && !summary.leader) msgs.push("no leader elected");
    }
    const b = $("banner");
    b.textContent = msgs.join(" · ");
    b.hidden = msgs.length === 0;
  }

  function renderVoters() {
    const tb = $("voters").tBodies[0]; clear(tb);
    (summary.voters || []).forEach((v) => {
      const tr = el("tr");
      [v.name, v.leader ? "★" : "", v.state, v.server || "", v.pending || 0].forEach((x) => tr.appendChild(el("td", x)));
      tb.appendChild(tr);
    });
    $("voters-box").hidden = !(summary.voters || []).length;
  }

  function fillSelect(sel, values) {
    const cur = sel.value, have = new Set(Array.from(sel.options).map((o) => o.value));
    values.forEach((v) => { if (!have.has(v)) { const o = el("option", v); o.value = v; sel.appendChild(o); } });
    sel.value = cur;
  }

  function filtered() {
    const q = $("search").value.trim().toLowerCase(), st = $("f-state").value, pr = $("f-provider").value, eph = $("f-eph").checked;
    return rows.filter((r) => (!st || r.State === st) && (!pr || r.Provider === pr) && (!eph || r.ephemeral) &&
      (!q || [r.Node, r.Provider, r.Role, r.State, r.Cause, r.GPUs, r.Version].join(" ").toLowerCase().includes(q)));
  }

  function renderTable() {
    fillSelect($("f-state"), [...new Set(rows.map((r) => r.State))].sort());
    fillSelect($("f-provider"), [...new Set(rows.map((r) => r.Provider))].sort());
    const list = filtered();
    list.sort((a, b) => {
      let x = a[sortKey], y = b[sortKey];
      if (x === null || x === undefined) return 1; // unknown last either way
      if (y === null || y === undefined) return -1;
      if (typeof x === "number") return (x - y) * sortDir || a.Node.localeCompare(b.Node);
      return String(x).localeCompare(String(y)) * sortDir || a.Node.localeCompare(b.Node);
    });
    const pages = Math.max(1, Math.ceil(list.length / PAGE));
    page = Math.min(page, pages - 1);
    $("page").textContent = "page " + (page + 1) + " of " + pages;
    $("shown").textContent = "(" + list.length + " of " + rows.length + ")";
    document.querySelectorAll("#nodes th[data-k]").forEach((th) => {
      th.className = th.dataset.k === sortKey ? (sortDir > 0 ? "asc" : "desc") : "";
    });
    const tb = $("nodes").tBodies[0]; clear(tb);
    list.slice(page * PAGE, (page + 1) * PAGE).forEach((r) => {
      const tr = el("tr"); tr.dataset.node = r.Node;
      const a = el("a", r.Node, "node"); a.href = "#node=" + encodeURIComponent(r.Node);
      const td = el("td"); td.appendChild(a);
      if (r.Trust && r.Trust !== "-") td.appendChild(el("b", " [" + r.Trust + "]"));
      tr.appendChild(td);
      tr.appendChild(el("td", r.Provider)); tr.appendChild(el("td", r.Role));
      tr.appendChild(el("td", r.State, "state " + r.State));
      [r.Gossip, r.GPUs, r.GPUUtil, r.DiskFree, r.RPO, r.LastSeen, r.Version, r.Cause].forEach((x) => tr.appendChild(el("td", x)));
      tb.appendChild(tr);
    });
  }

  function facts(dl, pairs) {
    clear(dl);
    pairs.forEach(([k, v]) => { dl.appendChild(el("dt", k)); dl.appendChild(el("dd", v === undefined || v === null || v === "" ? "-" : v)); });
  }
  function table(id, list, cells) {
    const tb = $(id).tBodies[0]; clear(tb);
    (list || []).forEach((x) => { const tr = el("tr"); cells(x).forEach((c) => tr.appendChild(el("td", c))); tb.appendChild(tr); });
  }

  // charts draws one small line chart per series of the node's history:
  // unmeasured points (null) break the line instead of drawing a 0.
  const SVG = "http://www.w3.org/2000/svg";
  function charts(box, hist) {
    clear(box);
    const series = [["GPU util", "gpu_util_percent", (v) => v.toFixed(0) + "%", 100], ["hottest GPU", "gpu_temp_c", (v) => v.toFixed(0) + " °C", 0],
      ["fullest disk", "disk_used_percent", (v) => v.toFixed(1) + "%", 100], ["RPO", "rpo_bytes", bytes, 0]];
    if (!hist || hist.length === 0) { box.appendChild(el("span", "no heartbeats yet")); return; }
    const W = 220, H = 48, t0 = Date.parse(hist[0].at), t1 = Math.max(Date.parse(hist[hist.length - 1].at), t0 + 1);
    series.forEach(([label, key, fmt, fixedMax]) => {
      const vals = hist.map((p) => p[key]).filter((v) => v !== null && v !== undefined);
      const fig = el("figure", null, "chart"); fig.dataset.series = key; fig.style.margin = "0";
      const last = hist[hist.length - 1][key];
      fig.appendChild(el("figcaption", label + ": " + (last === null || last === undefined ? "?" : fmt(last))));
      const svg = document.createElementNS(SVG, "svg");
      svg.setAttribute("width", W); svg.setAttribute("height", H); svg.setAttribute("viewBox", "0 0 " + W + " " + H);
      const max = fixedMax || Math.max(1, ...vals);
      let pts = [];
      const flush = () => { if (pts.length) { const pl = document.createElementNS(SVG, "polyline"); pl.setAttribute("points", pts.join(" ")); svg.appendChild(pl); } pts = []; };
      hist.forEach((p) => {
        const v = p[key];
        if (v === null || v === undefined) { flush(); return; }
        const x = ((Date.parse(p.at) - t0) / (t1 - t0)) * (W - 4) + 2, y = H - 2 - (Math.min(v, max) / max) * (H - 4);
        pts.push(x.toFixed(1) + "," + y.toFixed(1));
      });
      flush();
      fig.appendChild(svg);
      box.appendChild(fig);
    });
  }

  // The audit timeline is read less often than the rest (it scans the
  // newest MESH_AUDIT records); a failure shows in its own note.
  async function loadAudit(node) {
    if (node !== auditNode) { clear($("n-audit").tBodies[0]); $("n-audit-note").textContent = "loading…"; }
    auditNode = node; auditAt = Date.now();
    try {
      const a = await get("/api/dashboard/audit?node=" + encodeURIComponent(node));
      if (node === auditNode) renderAudit(a);
    } catch (e) {
      if (node === auditNode) $("n-audit-note").textContent = "cannot read the audit: " + String(e && e.message ? e.message : e);
    }
  }

  // what summarises an audit entry as meshctl audit does: "healthy → dead",
  // "stop vast/123 (result: ok)", else its details as key=value.
  function what(e) {
    const d = e.detail || {};
    let s;
    if (e.from || e.to) s = (e.from || "-") + " → " + (e.to || "-");
    else if (d.op) {
      s = d.op + " " + (d.provider || "") + "/" + (d.instance || "");
      if (d.phase) s += " (" + (d.phase === "result" ? (d.error ? "result: error " + d.error : "result: ok") : d.phase) + ")";
    } else s = Object.keys(d).sort().map((k) => k + "=" + d[k]).join(" ");
    return (s || "-") + (e.dry_run ? " [dry run]" : "");
  }
  function utc(t) { return new Date(t).toISOString().replace("T", " ").slice(0, 19); }

  function renderAudit(a) {
    const items = a.items || [];
    table("n-audit", items, (e) => [utc(e.at), e.kind, what(e), e.cause, e.actor]);
    $("n-audit-note").textContent = items.length === 0 ? "no audit entries for this node" + (a.partial ? " among the newest audit records" : "") :
      "newest " + items.length + (a.partial ? ", searched among the newest audit records only" : "");
  }

  // The sync history (what meshctl events --kind sync --node shows) is
  // read as often as the audit; a failure shows in its own note.
  async function loadSync(node) {
    if (node !== syncNode) { clear($("n-sync").tBodies[0]); $("n-sync-note").textContent = "loading…"; }
    syncNode = node; syncAt = Date.now();
    try {
      const s = await get("/api/dashboard/sync?node=" + encodeURIComponent(node));
      if (node === syncNode) renderSync(s);
    } catch (e) {
      if (node === syncNode) $("n-sync-note").textContent = "cannot read the sync history: " + String(e && e.message ? e.message : e);
    }
  }

  function files(n) { return n + (n === 1 ? " file" : " files"); }
  // renderSync lists each result newest first: what made it (files, their
  // bytes, bytes sent), each file that did not with its reason, the error,
  // and the data at risk after it ("?" when unknown, never 0).
  function renderSync(s) {
    const items = s.items || [], tb = $("n-sync").tBodies[0];
    clear(tb);
    items.forEach((x) => {
      const tr = el("tr"); tr.dataset.seq = String(x.seq);
      tr.appendChild(el("td", utc(x.at)));
      tr.appendChild(el("td", x.kind + (x.trigger && x.trigger !== "continuous" ? " (" + x.trigger + ")" : "")));
      const made = el("td", files(x.made_files) + ", " + bytes(x.made_bytes) + " (" + bytes(x.bytes_sent) + " sent)");
      made.title = (x.made || []).map((f) => f.path + " → " + (f.targets || []).join(", ")).join("\n");
      tr.appendChild(made);
      const missed = el("td", null, "missed"), list = x.missed || [];
      list.forEach((f) => missed.appendChild(el("div", f.path + " (" + bytes(f.size) + "): " + (f.reason || "no reason given"))));
      if (x.missed_files > list.length) missed.appendChild(el("div", "… and " + (x.missed_files - list.length) + " more"));
      if (x.error) missed.appendChild(el("div", "error: " + x.error));
      if (!missed.firstChild) missed.textContent = "-";
      tr.appendChild(missed);
      const rpo = x.rpo || {};
      tr.appendChild(el("td", rpo.unsynced_bytes == null ? "?" : bytes(rpo.unsynced_bytes) + (rpo.unsynced_files != null ? " in " + files(rpo.unsynced_files) : "")));
      tb.appendChild(tr);
    });
    let note = items.length === 0 ? "no sync or flush results stored for this node" : "newest " + items.length;
    if (s.unreadable) note += " · " + s.unreadable + " sync events not shown (invalid or too large; meshctl events --invalid)";
    if (s.partial) note += " · more sync events than one read covers: newer results may be missing";
    $("n-sync-note").textContent = note;
  }

  function money(v) { return v.toFixed(Math.abs(v) < 1 ? 4 : 2); }
  function hours(h) { return h.toFixed(1) + " h"; }
  // costFacts never shows a guess: an unknown price or an unobserved
  // interval is said, not counted as 0.
  function costFacts(c) {
    if (!c || !c.tracked) return [["accrued", "unknown (this coordinator does not track cost)"], ["price now", "unknown"]];
    const t = c.accrued || {}, amt = t.amount || {};
    const parts = Object.keys(amt).sort().map((cur) => money(amt[cur]) + " " + cur);
    if (t.unknown_hours > 0) parts.push("unknown for " + hours(t.unknown_hours) + " at an unknown price");
    let acc;
    if (parts.length) acc = parts.join(" + ");
    else if (t.idle_hours > 0) acc = "nothing accrued (" + hours(t.idle_hours) + " not billed)";
    else acc = "unknown (no cost observed for this node)";
    if (t.unobserved_hours > 0) acc += " (" + hours(t.unobserved_hours) + " unobserved, not charged)";
    let price;
    if (!c.instance) price = "unknown (no instance observed for this node)";
    else if (!c.billable) price = "not billed while " + (c.state || "unknown");
    else if (c.per_hour === null || c.per_hour === undefined) price = "unknown";
    else price = money(c.per_hour) + " " + c.currency + "/h" + (c.price_source ? " (" + c.price_source + ")" : "");
    return [["accrued", acc], ["price now", price], ["instance", c.instance ? c.provider + "/" + c.instance + (c.state ? " (" + c.state + ")" : "") : ""]];
  }

  function renderNode(d) {
    facts($("n-cost"), costFacts(d.cost));
    charts($("n-charts"), d.history);
    const r = d.record, row = d.row, h = r.health || {};
    $("n-actions").hidden = !(summary && summary.actions);
    $("n-title").textContent = r.node;
    facts($("n-facts"), [["state", r.state + (r.cause ? " — " + r.cause : "")], ["since", r.state_since], ["provider", r.provider],
      ["instance", r.instance_id], ["role", r.role], ["ephemeral", r.ephemeral ? "yes" : "no"], ["voter", r.voter ? "yes" : "no"],
      ["trust", row.Trust], ["agent", r.agent_version], ["last seen", row.LastSeen], ["health", (r.health_status || "?") + ((r.reasons || []).length ? ": " + r.reasons.join("; ") : "")],
      ["gossip", row.Gossip], ["host key", r.host_key_fingerprint], ["ringrift path", r.paths ? r.paths.ringrift : ""]]);
    const rpo = r.rpo || {}, ls = r.last_sync;
    facts($("n-rpo"), [["unsynced", bytes(rpo.unsynced_bytes) + (rpo.unsynced_files != null ? " in " + rpo.unsynced_files + " files" : "")],
      ["oldest unsynced", rpo.oldest_unsynced_seconds == null ? "?" : Math.round(rpo.oldest_unsynced_seconds) + "s"],
      ["sync enabled", r.sync_enabled ? "yes" : "no"],
      ["last sync", ls ? ls.phase + " (" + ls.trigger + ") " + bytes(ls.bytes_sent) + " of " + bytes(ls.bytes_total) + (ls.error ? " — error: " + ls.error : "") : "none reported"],
      ["preempt", r.preempt ? r.preempt.source + " deadline " + r.preempt.deadline : ""]]);
    const files = ls ? (ls.made || []).concat(ls.missed || []) : [];
    table("n-targets", files, (f) => [f.path, bytes(f.size), (f.targets || []).join(", ") || "-", f.reason || ""]);
    table("n-ssh", r.ssh, (e) => [e.kind, e.host, e.port, e.user]);
    table("n-gpus", h.gpus, (g) => [g.index, g.name, pct(g.utilization_percent),
      bytes(g.memory_used_bytes) + " / " + bytes(g.memory_total_bytes),
      g.temperature_c == null ? "?" : g.temperature_c + " °C", g.power_watts == null ? "?" : g.power_watts + " W",
      g.ecc_errors_uncorrected == null ? "?" : g.ecc_errors_uncorrected, g.xid_errors == null ? "?" : g.xid_errors]);
    table("n-disks", h.disks, (x) => [x.path, pct(x.used_percent), bytes(x.free_bytes), bytes(x.total_bytes), x.error || ""]);
  }

  // renderCost draws, per currency, one bar per UTC day of the cluster's
  // accrued cost, with the number of billed instances under each bar; a day
  // with billable hours at an unknown price is marked "≥" (a lower bound).
  function renderCost() {
    const box = $("cost-charts"), note = $("cost-note");
    clear(box);
    if (!costs || !costs.tracked) { note.textContent = costs ? "not tracked by this coordinator" : ""; return; }
    note.textContent = costs.days.length ? "UTC days " + costs.days[0].day + " … " + costs.days[costs.days.length - 1].day : "";
    if (!costs.currencies.length) { box.appendChild(el("p", "no billed hours in these days", "note")); return; }
    const W = 28 * costs.days.length, H = 90, B = 20;
    costs.currencies.forEach((cur) => {
      const fig = el("figure", null, "chart"); fig.dataset.currency = cur; fig.style.margin = "0";
      fig.appendChild(el("figcaption", cur));
      const svg = document.createElementNS(SVG, "svg");
      svg.setAttribute("width", W); svg.setAttribute("height", H + B); svg.setAttribute("viewBox", "0 0 " + W + " " + (H + B));
      const max = Math.max(...costs.days.map((d) => d.amount[cur] || 0), 1e-9);
      costs.days.forEach((d, i) => {
        const v = d.amount[cur] || 0, h = Math.round(v / max * (H - 12));
        const r = document.createElementNS(SVG, "rect");
        r.setAttribute("x", i * 28 + 4); r.setAttribute("y", H - h); r.setAttribute("width", 20); r.setAttribute("height", h);
        r.setAttribute("class", "bar");
        const t = document.createElementNS(SVG, "title");
        t.textContent = d.day + ": " + (d.unknown_hours > 0 ? "≥ " : "") + money(v) + " " + cur + ", " + d.instances + " instances" +
          (d.unknown_hours > 0 ? " (" + hours(d.unknown_hours) + " at an unknown price)" : "");
        r.appendChild(t); svg.appendChild(r);
        const n = document.createElementNS(SVG, "text");
        n.setAttribute("x", i * 28 + 14); n.setAttribute("y", H + 14); n.setAttribute("text-anchor", "middle");
        n.textContent = String(d.instances); svg.appendChild(n);
      });
      fig.appendChild(svg);
      fig.appendChild(el("figcaption", "max " + money(max) + " " + cur + " a day · numbers: instances billed", "note"));
      box.appendChild(fig);
    });
  }

  function start() {
    document.querySelectorAll("#nodes th[data-k]").forEach((th) => th.addEventListener("click", () => {
      if (sortKey === th.dataset.k) sortDir = -sortDir; else { sortKey = th.dataset.k; sortDir = 1; }
      renderTable();
    }));
    ["search", "f-state", "f-provider", "f-eph"].forEach((id) => $(id).addEventListener("input", () => { page = 0; renderTable(); }));
    $("prev").addEventListener("click", () => { page = Math.max(0, page - 1); renderTable(); });
    $("next").addEventListener("click", () => { page++; renderTable(); });
    $("back").addEventListener("click", (e) => { e.preventDefault(); history.pushState(null, "", location.pathname); poll(); });
    ["sync", "stop", "terminate"].forEach((op) => $("a-" + op).addEventListener("click", () => action(op)));
    window.addEventListener("hashchange", () => { $("a-result").textContent = ""; poll(); });
    poll();
    setInterval(poll, POLL_MS);
  }
  start();
})();
