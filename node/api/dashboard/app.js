// The node dashboard: reads this node's public GET routes (no token, no writes).
// Every value is put into the page with textContent, never as HTML, and the page's
// Content-Security-Policy allows only this script and stylesheet from this origin.
"use strict";

const POLL_MS = 2000;
const MAX_STREAMS = 16; // open event streams at once; other live jobs follow the polled list
const FINAL = new Set(["done", "failed", "cancelled"]);

const jobs = new Map(); // job_id -> summary from GET /v1/jobs, updated by events
const streams = new Map(); // job_id -> EventSource
const claimsByJob = new Map();
let selected = null; // job_id shown in the detail panel
let userSelected = false; // once the user picks a job, the newest job no longer takes over
let settles = null; // whether this node settles on a chain (from GET /v1/node), so /v1/ledger is asked only then

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function row(cells, className) {
  const tr = el("tr", null, className);
  for (const cell of cells) {
    const td = el("td");
    if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell === undefined || cell === null ? "" : String(cell);
    tr.appendChild(td);
  }
  return tr;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function short(id) {
  id = String(id || "");
  return id.length > 16 ? id.slice(0, 8) + "…" + id.slice(-6) : id;
}

function idCell(id) {
  const code = el("code", short(id), "id");
  code.title = String(id || "");
  return code;
}

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleTimeString() : "";
}

function definitions(dl, pairs) {
  const children = [];
  for (const [key, value] of pairs) {
    children.push(el("dt", key));
    children.push(value instanceof Node ? wrap("dd", value) : el("dd", value));
  }
  dl.replaceChildren(...children);
}

function wrap(tag, child) {
  const node = el(tag);
  node.appendChild(child);
  return node;
}

async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  return { status: response.status, ok: response.ok, body };
}

async function loadNode() {
  const { ok, body } = await getJSON("/v1/node");
  if (!ok) return;
  document.getElementById("node").textContent = `${body.peer_id} · ${body.region} · v${body.version}`;
  settles = Boolean(body.chain);
}

async function loadReady() {
  const badge = document.getElementById("ready");
  try {
    const { ok, body } = await getJSON("/ready");
    badge.textContent = ok ? "ready" : `not ready: ${(body && body.failed || []).join(", ")}`;
    badge.className = "badge " + (ok ? "ok" : "bad");
  } catch (_) {
    badge.textContent = "unreachable";
    badge.className = "badge bad";
  }
}

// This node's record of each peer it gave jobs to (GET /v1/reputation); blank where it has none,
// or when the route needs a token this page does not have.
async function loadRecord() {
  const { ok, body } = await getJSON("/v1/reputation");
  const record = new Map();
  for (const r of (ok && body.peers) || []) record.set(r.peer_id, r.excluded ? "excluded" : `+${Math.round(r.penalty_seconds)} s`);
  return record;
}

async function loadPeers() {
  const [{ ok, body }, record] = await Promise.all([getJSON("/v1/peers"), loadRecord()]);
  if (!ok) return;
  const peers = body.peers || [];
  document.getElementById("peer-count").textContent = `(${peers.filter((p) => p.alive).length} alive of ${peers.length})`;
  fill(document.querySelector("#peers tbody"), peers.map((p) => {
    const load = p.load ? p.load.running_jobs : "";
    const tr = row([idCell(p.peer_id), p.region, load, p.capacity ? p.capacity.cpu_cores : "", p.price,
      (p.runtimes || []).join(" "), p.alive ? `${p.last_seen_seconds_ago}s ago` : "gone", record.get(p.peer_id) || ""], "peer");
    tr.dataset.peer = p.peer_id;
    tr.dataset.region = p.region;
    return tr;
  }));
}

function stateCell(state) {
  return el("span", state, "state " + state);
}

function renderJobs() {
  const list = [...jobs.values()].sort((a, b) => b.created - a.created);
  document.getElementById("job-count").textContent = `(${list.length})`;
  fill(document.querySelector("#jobs tbody"), list.map((job) => {
    const tr = row([idCell(job.job_id), stateCell(job.state), idCell(job.agent), when(job.created), el("span", job.reason, "wrap")],
      "job" + (job.job_id === selected ? " selected" : ""));
    tr.dataset.job = job.job_id;
    tr.dataset.state = job.state;
    tr.addEventListener("click", () => { userSelected = true; select(job.job_id); });
    return tr;
  }));
}

async function loadJobs() {
  const { ok, body } = await getJSON("/v1/jobs?limit=50");
  if (!ok) return;
  for (const summary of body.jobs || []) {
    update(summary);
    if (!FINAL.has(summary.state)) follow(summary.job_id);
  }
  const newest = (body.jobs || [])[0];
  if (newest && !userSelected && selected !== newest.job_id) select(newest.job_id);
  renderJobs();
}

// Keep what is known of a job unless the news is older: the polled list, the event stream
// and the job's own record answer at different moments, and the page must never step back.
function update(summary) {
  const known = jobs.get(summary.job_id);
  if (!known || summary.updated >= known.updated) jobs.set(summary.job_id, summary);
}

// The event stream says when a job changed; what changed is read from the job itself, because
// a stream replays the history first and its events carry no time to order them by.
function follow(jobId) {
  if (streams.has(jobId) || streams.size >= MAX_STREAMS) return;
  const source = new EventSource(`/v1/jobs/${encodeURIComponent(jobId)}/events`);
  streams.set(jobId, source);
  source.addEventListener("state", (message) => {
    const event = JSON.parse(message.data);
    refresh(jobId);
    if (FINAL.has(event.state)) { source.close(); streams.delete(jobId); }
  });
  source.onerror = () => { source.close(); streams.delete(jobId); }; // the next poll reopens it if still live
}

const refreshing = new Map(); // job_id -> {again}: one read in flight per job, repeated if more news came

async function refresh(jobId) {
  const pending = refreshing.get(jobId);
  if (pending) { pending.again = true; return; }
  const mark = { again: false };
  refreshing.set(jobId, mark);
  try {
    do {
      mark.again = false;
      const { ok, body } = await getJSON(`/v1/jobs/${encodeURIComponent(jobId)}`);
      const last = ok ? (body.transitions || []).slice(-1)[0] : null;
      if (last) {
        const first = body.transitions[0];
        update({ job_id: jobId, state: body.state, agent: body.agent, created: first.at, updated: last.at, reason: last.reason });
        renderJobs();
        if (jobId === selected) loadDetail(jobId);
      }
    } while (mark.again);
  } finally {
    refreshing.delete(jobId);
  }
}

function select(jobId) {
  selected = jobId;
  renderJobs();
  loadDetail(jobId);
}

async function loadDetail(jobId) {
  const [job, placement] = await Promise.all([
    getJSON(`/v1/jobs/${encodeURIComponent(jobId)}`),
    getJSON(`/v1/jobs/${encodeURIComponent(jobId)}/placement`),
  ]);
  if (jobId !== selected || !job.ok) return;
  const detail = job.body;
  document.getElementById("job-detail").hidden = false;
  document.getElementById("detail-id").textContent = detail.job_id;
  const badge = document.getElementById("detail-state");
  badge.textContent = detail.state;
  badge.className = "state " + detail.state;
  const candidates = placement.ok ? placement.body.candidates || [] : [];
  const tbody = document.querySelector("#placement tbody");
  fill(tbody, candidates.length ? candidates.map((c) =>
    row([el("span", c.verdict, "verdict " + c.verdict), idCell(c.peer_id), el("span", c.reason, "wrap")], "candidate"))
    : [row(["", "", "not placed yet"])]);
  document.getElementById("transitions").replaceChildren(...(detail.transitions || []).map((t) =>
    el("li", `${when(t.at)} ${t.state}: ${t.reason}`, "wrap")));
  const pairs = [["paid", detail.paid ? "yes" : "no"], ["chain job id", el("code", detail.chain_job_id)]];
  if (detail.result) pairs.push(["result", el("code", detail.result)]);
  for (const [peer, cid] of Object.entries(detail.receipts || {})) {
    const link = el("a", short(cid));
    link.href = `/v1/jobs/${encodeURIComponent(detail.job_id)}/receipt?node=${encodeURIComponent(peer)}`;
    link.title = cid;
    pairs.push([`receipt from ${short(peer)}`, link]);
  }
  if (!Object.keys(detail.receipts || {}).length) pairs.push(["receipt", "none yet"]);
  const claim = claimsByJob.get(detail.job_id);
  pairs.push(["settlement", claim ? `${claim.state}, ${claim.amount} wei${claim.tx_hash ? ", tx " + claim.tx_hash : ""}`
    : detail.paid ? "claimed by the executing node (see its dashboard)" : "unpaid job: nothing to settle"]);
  definitions(document.getElementById("settlement"), pairs);
}

async function loadStorage() {
  const [storage, pins] = await Promise.all([getJSON("/v1/storage"), getJSON("/v1/pins")]);
  if (storage.ok) {
    const s = storage.body;
    definitions(document.getElementById("storage"), [
      ["blocks", s.blocks], ["used", bytes(s.bytes)], ["quota", s.quota ? bytes(s.quota) : "none"], ["pins", s.pins],
    ]);
  }
  if (pins.ok) {
    const list = pins.body.pins || [];
    document.getElementById("pin-count").textContent = `(${list.length})`;
    fill(document.querySelector("#pins tbody"), list.slice(0, 100).map((p) => row([idCell(p.cid), p.name, when(p.created)])));
  }
}

async function loadPrivate() {
  const answer = await getJSON("/v1/private");
  const section = document.getElementById("private-section");
  const list = answer.ok ? answer.body.datasets || [] : [];
  section.hidden = list.length === 0; // a node with no private data (or a token-protected route) shows nothing
  document.getElementById("private-count").textContent = `(${list.length})`;
  fill(document.querySelector("#private tbody"), list.slice(0, 100).map((d) => {
    const holders = el("span", (d.holders || []).map(short).join(", "), "wrap");
    holders.title = (d.holders || []).join("\n");
    const refused = Object.entries(d.refused || {}).map(([reason, n]) => `${reason} ${n}`).join(", ") || "none";
    return row([idCell(d.dataset), el("span", d.state, "state " + d.state), d.policy ? idCell(d.policy) : "none",
      holders, d.expires ? new Date(d.expires * 1000).toLocaleString() : "", d.grants, refused], "private-dataset");
  }));
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  n = Number(n || 0);
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

async function loadLedger() {
  const dl = document.getElementById("ledger");
  if (settles === false) {
    definitions(dl, [["settlement", "off: this node settles on no chain"]]);
    return;
  }
  if (settles === null) return; // not known yet: the next poll asks
  const ledger = await getJSON("/v1/ledger");
  if (!ledger.ok) {
    definitions(dl, [["settlement", ledger.body && ledger.body.error === "settlement_off" ? "off: this node settles on no chain" : "unavailable"]]);
    return;
  }
  const claims = await getJSON("/v1/ledger/claims");
  const list = claims.ok ? claims.body.claims || [] : [];
  claimsByJob.clear();
  for (const c of list) claimsByJob.set(c.job_id, c);
  const earned = list.filter((c) => c.state === "settled").reduce((sum, c) => sum + BigInt(c.amount), 0n);
  const pending = list.filter((c) => c.state !== "settled" && c.state !== "failed").reduce((sum, c) => sum + BigInt(c.amount), 0n);
  const l = ledger.body;
  definitions(dl, [["account", el("code", l.address)], ["contract", el("code", l.contract)], ["chain id", l.chain_id],
    ["registered", l.registered ? "yes" : "no"], ["earned (settled)", `${earned} wei`], ["pending", `${pending} wei`],
    ["claims", Object.entries(l.claims || {}).map(([k, v]) => `${k} ${v}`).join(", ")]]);
  fill(document.querySelector("#claims tbody"), list.slice(-100).reverse().map((c) =>
    row([idCell(c.job_id), c.state, c.amount, c.tx_hash ? idCell(c.tx_hash) : ""])));
}

async function tick() {
  const steps = [loadReady, loadPeers, loadJobs, loadStorage, loadPrivate, loadLedger];
  await Promise.all(steps.map((step) => step().catch(() => {})));
  // the shown job is read again: its receipt and its claim's settlement arrive after it ends
  if (selected) await loadDetail(selected).catch(() => {});
}

document.addEventListener("DOMContentLoaded", async () => {
  await loadNode().catch(() => {});
  tick();
  setInterval(tick, POLL_MS);
});
