// The API reference: reads this node's /v1/openapi.json, lists every operation, shows its
// parameters and schemas, and sends a request the user fills in with fetch() to this origin.
// Every value from the spec or an answer goes into the page with textContent, never as HTML.
"use strict";

const MAX_SHOWN = 200000; // characters of an answer shown; the rest is cut (a blob can be large)
let spec = null;

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

// Inline local $refs for display, so a reader sees the whole shape in one place.
function resolve(schema, depth = 0) {
  if (depth > 12 || schema === null || typeof schema !== "object") return schema;
  if (Array.isArray(schema)) return schema.map((item) => resolve(item, depth + 1));
  if (typeof schema.$ref === "string" && schema.$ref.startsWith("#/")) {
    let target = spec;
    for (const part of schema.$ref.slice(2).split("/")) target = target ? target[part] : undefined;
    return resolve(target, depth + 1);
  }
  const out = {};
  for (const [key, value] of Object.entries(schema)) out[key] = resolve(value, depth + 1);
  return out;
}

function operations() {
  const found = [];
  for (const [path, item] of Object.entries(spec.paths || {})) {
    for (const [method, op] of Object.entries(item)) found.push({ path, method, op });
  }
  return found;
}

function listOperations() {
  const list = document.getElementById("operations");
  const needle = document.getElementById("filter").value.toLowerCase();
  const items = [];
  for (const entry of operations()) {
    const label = `${entry.method.toUpperCase()} ${entry.path}`;
    if (needle && !(label + " " + (entry.op.summary || "")).toLowerCase().includes(needle)) continue;
    const li = el("li");
    li.dataset.operation = label;
    li.appendChild(el("span", entry.method.toUpperCase(), "method " + entry.method));
    li.appendChild(el("span", entry.path, "path"));
    li.title = entry.op.summary || "";
    li.addEventListener("click", () => show(entry, li));
    items.push(li);
  }
  list.replaceChildren(...items);
}

function schemaBlock(title, schema) {
  const box = document.createDocumentFragment();
  box.appendChild(el("h3", title));
  box.appendChild(el("pre", JSON.stringify(resolve(schema), null, 2), "schema"));
  return box;
}

function show(entry, li) {
  for (const other of document.querySelectorAll("#operations li.selected")) other.classList.remove("selected");
  li.classList.add("selected");
  const { path, method, op } = entry;
  const section = document.getElementById("operation");
  const parts = [el("h2", `${method.toUpperCase()} ${path}`), el("p", op.summary || "")];
  if (op.security) parts.push(el("p", "Needs the bearer token when the node sets api.token.", "muted"));

  const params = op.parameters || [];
  const inputs = new Map();
  if (params.length) {
    parts.push(el("h3", "Parameters"));
    const table = el("table");
    for (const param of params) {
      const tr = el("tr");
      tr.appendChild(el("td", `${param.name} (${param.in}${param.required ? ", required" : ""})`));
      tr.appendChild(el("td", JSON.stringify(param.schema || {}), "muted"));
      const td = el("td");
      const input = el("input");
      input.name = param.name;
      input.dataset.in = param.in;
      td.appendChild(input);
      tr.appendChild(td);
      inputs.set(param.name, input);
      table.appendChild(tr);
    }
    parts.push(table);
  }

  let body = null;
  let bodyType = null;
  const content = (op.requestBody && op.requestBody.content) || {};
  if (Object.keys(content).length) {
    bodyType = Object.keys(content)[0];
    for (const [type, media] of Object.entries(content)) parts.push(schemaBlock(`Request body (${type})`, media.schema));
    if (bodyType === "application/json") {
      parts.push(el("h3", "Body to send"));
      body = el("textarea");
      body.id = "body";
      const media = content[bodyType];
      body.value = JSON.stringify(media.example || (resolve(media.schema) || {}).example || {}, null, 2);
      parts.push(body);
    } else {
      parts.push(el("p", `This operation takes ${bodyType}; send it with the CLI or curl.`, "muted"));
    }
  }

  for (const [status, response] of Object.entries(op.responses || {})) {
    const media = response.$ref ? resolve(response) : response;
    const json = media.content && media.content["application/json"];
    const title = `Response ${status}: ${media.description || ""}`;
    if (json && json.schema) parts.push(schemaBlock(title, json.schema));
    else parts.push(el("h3", title));
  }

  const send = el("button", "Send request");
  send.id = "send";
  const result = el("pre", "", "result");
  result.id = "result";
  send.addEventListener("click", () => trySend(path, method, inputs, body, bodyType, result));
  parts.push(el("h3", "Try it"), send, result);
  section.replaceChildren(...parts);
}

async function trySend(path, method, inputs, body, bodyType, result) {
  let url = path;
  const query = new URLSearchParams();
  for (const [name, input] of inputs) {
    if (input.dataset.in === "path") url = url.replace(`{${name}}`, encodeURIComponent(input.value));
    else if (input.dataset.in === "query" && input.value) query.set(name, input.value);
  }
  if ([...query].length) url += "?" + query.toString();
  const headers = {};
  const token = document.getElementById("token").value;
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method: method.toUpperCase(), headers };
  if (body && bodyType) {
    headers["Content-Type"] = bodyType;
    init.body = body.value;
  }
  result.className = "result";
  result.textContent = `${init.method} ${url} …`;
  try {
    const response = await fetch(url, init);
    const text = await response.text();
    let shown = text;
    try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* not JSON: shown as text */ }
    if (shown.length > MAX_SHOWN) shown = shown.slice(0, MAX_SHOWN) + "\n… (cut)";
    result.className = "result " + (response.ok ? "ok" : "bad");
    result.dataset.status = String(response.status);
    result.textContent = `${response.status} ${response.statusText}\n${shown}`;
  } catch (error) {
    result.className = "result bad";
    result.textContent = `request failed: ${error}`;
  }
}

async function load() {
  const status = document.getElementById("status");
  try {
    const response = await fetch("/v1/openapi.json");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    spec = await response.json();
  } catch (error) {
    status.textContent = `could not read /v1/openapi.json: ${error}`;
    return;
  }
  document.getElementById("title").textContent = spec.info.title;
  document.getElementById("version").textContent = `version ${spec.info.version}, OpenAPI ${spec.openapi}`;
  status.textContent = "pick an operation";
  document.getElementById("filter").addEventListener("input", listOperations);
  listOperations();
}

load();
