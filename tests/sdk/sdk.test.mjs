// The mirrored product's JS SDK, `@useparagon/connect` 2.4.0 exactly as npm
// ships it, driven against a `switchboard dev` this test starts: a page on
// another origin authenticates a connected user (with metadata, so the SDK
// PATCHes it), sends an App Event and calls a request-triggered workflow;
// the runs are then checked over the API.
//
// The page is jsdom on http://app.example.test:3000. The SDK calls the
// global fetch; Node's has no CORS, so browserFetch below does what a
// browser does for a cross-origin call with an Authorization header: a
// preflight first, refused unless it allows the origin, method and every
// header, then the request with Origin, whose answer is unreadable without
// Access-Control-Allow-Origin.
//
// Needs ../../bin/switchboard (`make build`; `make test-sdk` builds it).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, existsSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { JSDOM } from "jsdom";

const here = dirname(fileURLToPath(import.meta.url));
const bin = join(here, "..", "..", "bin", "switchboard");
const PAGE_ORIGIN = "http://app.example.test:3000";
const PROJECT = "dev";
// Node's own fetch, kept before the page replaces the global one: the test
// talks to the API with it, and browserFetch sends with it.
const nodeFetch = globalThis.fetch;

// ---- polling ------------------------------------------------------------

// eventually retries fn until it returns a value other than undefined, or
// fails with its last error once the deadline passes.
async function eventually(what, fn, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ---- the server -----------------------------------------------------------

let dev; // the switchboard dev child process
let base; // http://127.0.0.1:PORT
let dataDir;
let apiKey;
let adminToken;
let userToken;
const listened = []; // bodies the workflow's http step posted
let listener;

async function api(method, path, { token = apiKey, body, headers = {} } = {}) {
  const res = await nodeFetch(base + path, {
    method,
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}`, ...headers },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text, headers: res.headers };
}

async function must(status, method, path, opts) {
  const r = await api(method, path, opts);
  assert.equal(r.status, status, `${method} ${path}: ${r.status} ${r.text}`);
  return r.json;
}

function documents(listenerURL) {
  return `kind: AppEvent
name: Contact Created
schema: {type: object, required: [email], properties: {email: {type: string}}}
---
kind: Integration
id: crm
name: Example CRM
auth: {type: bearer}
---
kind: Workflow
id: contact-to-crm
integration: crm
trigger: {type: app_event, event: Contact Created}
steps:
  - id: create
    type: http
    method: POST
    url: ${listenerURL}/contacts
    auth: credential
    json: {email: "{{ trigger.payload.email }}", owner: "{{ user.id }}", run: "{{ run.id }}"}
---
kind: Workflow
id: quote
trigger: {type: request, methods: [POST]}
steps:
  - id: reply
    type: response
    status: 201
    json:
      item: "{{ trigger.request.body.item }}"
      total: "{{ trigger.request.body.qty * 2.5 }}"
      coupon: "{{ trigger.request.query.coupon }}"
      header: "{{ trigger.request.headers['x-quote-source'] }}"
      user: "{{ user.id }}"
`;
}

before(async () => {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`make build\` (or \`make test-sdk\`)`);
  listener = createServer((req, res) => {
    let raw = "";
    req.on("data", (c) => (raw += c));
    req.on("end", () => {
      listened.push({ path: req.url, auth: req.headers.authorization, body: JSON.parse(raw || "{}") });
      res.writeHead(200, { "Content-Type": "application/json" }).end("{}");
    });
  });
  await new Promise((r) => listener.listen(0, "127.0.0.1", r));

  dataDir = mkdtempSync(join(tmpdir(), "sb-sdk-"));
  const examples = join(dataDir, "no-examples");
  mkdirSync(examples);
  // Port 0 everywhere and no admin listener: the test runs beside a
  // `make run` and other tests.
  dev = spawn(bin, ["dev", "--data-dir", dataDir, "--http-addr", "127.0.0.1:0", "--nats-addr", "127.0.0.1:0", "--examples", examples], {
    env: { ...process.env, SWITCHBOARD_ADMIN_ADDR: "off", SWITCHBOARD_LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let errOut = "";
  dev.stdout.on("data", (d) => (out += d));
  dev.stderr.on("data", (d) => (errOut += d));
  const exited = new Promise((_, reject) => dev.on("exit", (code) => reject(new Error(`switchboard dev exited (${code}): ${errOut}`))));
  exited.catch(() => {});
  base = await Promise.race([
    exited,
    eventually("switchboard dev to print its API address", () => out.match(/API\s+(http:\/\/\S+)/)?.[1], 60_000),
  ]);
  apiKey = readFileSync(join(dataDir, "dev-api-key"), "utf8").trim();
  adminToken = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
  userToken = execFileSync(bin, ["token", "--data-dir", dataDir, "--user", "u1"], { encoding: "utf8" }).trim().split("\n").pop();

  await must(200, "PUT", `/v1/projects/${PROJECT}`, { token: adminToken, body: { allowedOrigins: [PAGE_ORIGIN] } });
  const apply = await nodeFetch(`${base}/v1/projects/${PROJECT}/apply`, {
    method: "POST",
    headers: { Authorization: `Bearer ${apiKey}`, "Content-Type": "application/yaml" },
    body: documents(`http://127.0.0.1:${listener.address().port}`),
  });
  assert.equal(apply.status, 200, await apply.text());
  await must(200, "PUT", `/v1/projects/${PROJECT}/users/u1`, { body: { metadata: { plan: "pro" } } });
  await must(200, "PUT", `/v1/projects/${PROJECT}/users/u1/credentials/c1`, {
    body: { integration: "crm", secret: { accessToken: "tok-c1" } },
  });
});

after(async () => {
  if (dev && dev.exitCode === null) {
    const gone = new Promise((r) => dev.on("exit", r));
    dev.kill("SIGTERM");
    // A stop that hangs must not hang the suite: SIGKILL after 15 s.
    const force = setTimeout(() => dev.kill("SIGKILL"), 15_000);
    await gone;
    clearTimeout(force);
  }
  listener?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

// ---- the page -------------------------------------------------------------

const calls = []; // every request the SDK made, as the server saw it

// browserFetch is fetch as a browser on PAGE_ORIGIN runs it for the SDK.
async function browserFetch(input, init = {}) {
  const url = new URL(String(input));
  const method = (init.method || "GET").toUpperCase();
  const headers = new Headers(init.headers);
  // The path as sent: URL drops an empty query's "?", which the SDK's
  // request-trigger URLs always carry.
  const call = { method, path: String(input).slice(url.origin.length), headers: Object.fromEntries(headers), body: init.body };
  calls.push(call);
  if (url.origin === PAGE_ORIGIN) throw new TypeError("the page has no server of its own");
  // Authorization (always sent) makes every call need a preflight.
  const names = [...headers.keys()].map((n) => n.toLowerCase()).sort();
  const pre = await nodeFetch(url, {
    method: "OPTIONS",
    headers: { Origin: PAGE_ORIGIN, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": names.join(",") },
  });
  const allowOrigin = pre.headers.get("access-control-allow-origin");
  const allowMethods = (pre.headers.get("access-control-allow-methods") || "").split(",").map((s) => s.trim());
  const allowHeaders = (pre.headers.get("access-control-allow-headers") || "").split(",").map((s) => s.trim().toLowerCase());
  call.preflight = pre.status;
  if (!pre.ok || allowOrigin !== PAGE_ORIGIN || !allowMethods.includes(method) || names.some((n) => !allowHeaders.includes(n))) {
    throw new TypeError(`Failed to fetch (CORS preflight of ${method} ${url.pathname}: ${pre.status}, origin ${allowOrigin}, methods ${allowMethods}, headers ${allowHeaders})`);
  }
  headers.set("Origin", PAGE_ORIGIN);
  const res = await nodeFetch(url, { ...init, headers });
  call.status = res.status;
  // What a page can read of the answer's headers: the CORS-safelisted ones
  // and those in Access-Control-Expose-Headers.
  const exposed = (res.headers.get("access-control-expose-headers") || "").split(",").map((h) => h.trim().toLowerCase());
  if (exposed.includes("x-switchboard-run-id")) call.runId = res.headers.get("x-switchboard-run-id");
  if (res.headers.get("access-control-allow-origin") !== PAGE_ORIGIN) {
    throw new TypeError(`Failed to fetch (no Access-Control-Allow-Origin on ${res.status} of ${method} ${url.pathname})`);
  }
  return res;
}

let paragon;

// loadSDK opens the page and loads the SDK into it: the package builds its
// singleton when it is first required, and that needs a window.
function loadSDK() {
  const dom = new JSDOM("<!doctype html><html><body></body></html>", { url: PAGE_ORIGIN + "/settings/integrations" });
  const { window } = dom;
  globalThis.window = window;
  globalThis.document = window.document;
  globalThis.localStorage = window.localStorage;
  globalThis.fetch = browserFetch;
  const require = createRequire(import.meta.url);
  return require("@useparagon/connect").paragon;
}

// ---- the tests ------------------------------------------------------------

test("the installed SDK is 2.4.0 from npm", () => {
  const pkg = JSON.parse(readFileSync(join(here, "node_modules", "@useparagon", "connect", "package.json"), "utf8"));
  assert.equal(pkg.version, "2.4.0");
});

test("authenticate, event and workflow from a page on another origin", async (t) => {
  paragon = loadSDK();
  paragon.configureGlobal({ host: "switchboard.invalid" }, { ZEUS_PUBLIC_URL: base, HERMES_PUBLIC_URL: base });

  await t.test("authenticate with metadata", async () => {
    await paragon.authenticate(PROJECT, userToken, { metadata: { Name: "Ada", Email: "ada@example.com" } });
    const user = paragon.getUser();
    assert.equal(user.authenticated, true);
    assert.equal(user.userId, "u1");
    assert.equal(user.integrations.crm.enabled, true);
    assert.equal(user.integrations.crm.credentialId, "c1");
    assert.equal(user.meta.plan, "pro");
    // What the SDK sent, as the server got it.
    for (const c of calls) {
      assert.equal(c.headers.authorization, `Bearer ${userToken}`);
      assert.equal(c.headers["content-type"], "application/json");
      assert.equal(c.headers["x-paragon-sdk-version"], "2.4.0");
      assert.equal(c.preflight, 204, `${c.method} ${c.path} preflight`);
    }
    const seen = calls.map((c) => `${c.method} ${c.path}`);
    for (const want of ["GET /projects/dev/sdk/me", "GET /projects/dev/sdk/integrations", "PATCH /projects/dev/sdk/me"]) {
      assert.ok(seen.includes(want), `${want} not in ${seen}`);
    }
    const u = await must(200, "GET", `/v1/projects/${PROJECT}/users/u1`);
    assert.equal(u.metadata.plan, "pro", "PATCH keeps the keys it was not given");
    assert.equal(u.metadata.Name, "Ada");
    assert.equal(u.metadata.Email, "ada@example.com");
  });

  await t.test("event runs the app-event workflow", async () => {
    await paragon.event("Contact Created", { email: "grace@example.com" });
    const call = calls.at(-1);
    assert.equal(`${call.method} ${call.path}`, "POST /v2/projects/dev/sdk/events/trigger");
    assert.equal(call.status, 202);
    const got = await eventually("the listener to get the contact", () => listened.find((l) => l.body.email === "grace@example.com"));
    assert.equal(got.auth, "Bearer tok-c1");
    assert.equal(got.body.owner, "u1");
    const run = await eventually("the run to succeed", async () => {
      const r = await must(200, "GET", `/v1/projects/${PROJECT}/runs/${got.body.run}`);
      return r.status === "succeeded" ? r : undefined;
    });
    assert.equal(run.workflow, "contact-to-crm");
    assert.equal(run.user, "u1");
    assert.equal(run.credential, "c1");
  });

  await t.test("workflow returns the response step's answer", async () => {
    const out = await paragon.workflow("quote", {
      body: { item: "pen", qty: 4 },
      query: { coupon: "SPRING" },
      headers: { "X-Quote-Source": "settings-page" },
    });
    assert.deepEqual(out, { item: "pen", total: 10, coupon: "SPRING", header: "settings-page", user: "u1" });
    const call = calls.at(-1);
    assert.equal(`${call.method} ${call.path}`, "POST /projects/dev/sdk/triggers/quote?coupon=SPRING");
    assert.equal(call.status, 201);
    // The answer names its run; the run is the user's and succeeds.
    const runId = call.runId;
    assert.ok(runId, "X-Switchboard-Run-Id is readable by the page (Access-Control-Expose-Headers)");
    const run = await eventually("the quote run to succeed", async () => {
      const r = await must(200, "GET", `/v1/projects/${PROJECT}/runs/${runId}`);
      return r.status === "succeeded" ? r : undefined;
    });
    assert.equal(run.workflow, "quote");
    assert.equal(run.user, "u1");
  });

  await t.test("workflow without a query still sends ?", async () => {
    const out = await paragon.workflow("quote", { body: { item: "cup", qty: 2 } });
    assert.equal(out.total, 5);
    assert.equal(calls.at(-1).path, "/projects/dev/sdk/triggers/quote?");
  });

  await t.test("an error shows the error body", async () => {
    // contact-to-crm is not request-triggered: 404 workflow_not_found,
    // which the SDK throws as JSON.stringify(body).
    await assert.rejects(paragon.workflow("contact-to-crm", { body: {} }), (err) => {
      const body = JSON.parse(err.message);
      assert.equal(body.error.code, "workflow_not_found");
      assert.ok(body.error.message);
      return true;
    });
    // A workflow the project does not have is refused before any request.
    const n = calls.length;
    await assert.rejects(async () => paragon.workflow("nope"), /not found/);
    assert.equal(calls.length, n);
  });

  await t.test("a 401 logs the user out", async () => {
    const [h, p] = userToken.split(".");
    const forged = `${h}.${p}.${Buffer.from("not the signature").toString("base64url")}`;
    await assert.rejects(paragon.authenticate(PROJECT, forged), (err) => {
      const body = JSON.parse(err.message.replace(/^Failed to authenticate user with Paragon: /, ""));
      assert.equal(body.error.code, "unauthorized");
      return true;
    });
    assert.equal(paragon.getUser().authenticated, false);
  });
});

test("a page on an origin the project does not allow is refused", async () => {
  const r = await nodeFetch(`${base}/projects/${PROJECT}/sdk/me`, {
    method: "OPTIONS",
    headers: { Origin: "https://other.example", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization" },
  });
  assert.equal(r.status, 403);
  assert.equal(r.headers.get("access-control-allow-origin"), null);
  assert.equal((await r.json()).error.code, "origin_not_allowed");
});
