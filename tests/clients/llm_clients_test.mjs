// LLM clients leaving through sluice: the official `openai` npm client
// streaming a chat completion (OpenAI's SSE format) and the `ollama` npm client
// streaming a chat (NDJSON), each aborted through its AbortController after
// three tokens while the model pauses, and `curl -N` killed mid-stream as a
// user's Ctrl-C would. Each time the origin must see its connection close
// while it is still pausing, that is before it would have written another
// byte: sluice noticed the client leave with nothing flowing and closed the
// upstream. Also the openai client aborting before the first token (the model
// still thinking, no response head yet). The time from the abort to the
// origin's close is printed. Exit 77 when the npm packages are missing.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { startSluice, tempDir } from "./start_sluice.mjs";

const [sluiceBin, modulesDir] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(modulesDir), "noop.js"));
let OpenAI, Ollama;
try {
  OpenAI = require("openai").OpenAI;
  Ollama = require("ollama").Ollama;
} catch (e) {
  console.error("!!!! SKIPPING: the openai and ollama npm packages are not installed (npm missing?): " + e.message);
  process.exit(77);
}

const fail = (msg) => { console.error("FAIL: " + msg); process.exit(1); };
setTimeout(() => fail("timed out after 60s"), 60000).unref();
const PAUSE_MS = 20000;  // longer than the whole test may take: a close seen "during the pause" is a cancel

// The model server. Each generation reports when its connection closed and
// whether that happened while it was pausing.
const generations = [];
function generation(req, res, format) {
  const g = { path: req.url, written: 0, pausing: false, closedWhilePausing: false, closedAt: 0 };
  generations.push(g);
  const token = (i) => format === "sse"
    ? `data: ${JSON.stringify({ id: "c1", object: "chat.completion.chunk", created: 0, model: "m",
                                choices: [{ index: 0, delta: { content: "tok" + i }, finish_reason: null }] })}\n\n`
    : JSON.stringify({ model: "m", created_at: new Date().toISOString(),
                       message: { role: "assistant", content: "tok" + i }, done: false }) + "\n";
  res.socket.on("close", () => {
    g.closedAt = performance.now();
    g.closedWhilePausing = g.pausing;
  });
  const thinkFirst = req.headers["x-think-first"] === "1";
  if (thinkFirst) { g.pausing = true; return; }  // no head, no byte: the model is thinking
  res.writeHead(200, { "Content-Type": format === "sse" ? "text/event-stream" : "application/x-ndjson" });
  let i = 0;
  const next = () => {
    if (res.destroyed) return;
    res.write(token(i++));
    g.written = i;
    if (i === 3) { g.pausing = true; setTimeout(next, PAUSE_MS); return; }  // a long pause between tokens
    g.pausing = false;
    if (i < 10) setTimeout(next, 10);
    else res.end(format === "sse" ? "data: [DONE]\n\n" : JSON.stringify({ model: "m", done: true }) + "\n");
  };
  next();
}
const model = http.createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    if (req.url.startsWith("/v1/chat/completions")) generation(req, res, "sse");
    else if (req.url.startsWith("/api/chat")) generation(req, res, "ndjson");
    else if (req.url.startsWith("/stream")) generation(req, res, "sse");
    else { res.writeHead(404); res.end(); }
  });
});
const modelPort = await new Promise((resolve) => model.listen(0, "127.0.0.1", () => resolve(model.address().port)));

const dir = tempDir("sluice-llm-");
const configPath = path.join(dir, "config.yaml");
fs.writeFileSync(configPath, `
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters: [{name: ai, endpoints: ["127.0.0.1:${modelPort}"]}]
routes: [{name: ai, match: {path_prefix: /}, cluster: ai}]
access_log: {enabled: false}
`);
const { proc: sluice, port } = await startSluice(sluiceBin, configPath);
const base = `http://127.0.0.1:${port}`;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Waits for the newest generation's connection to close; returns ms from `since`.
async function originClosed(g, since, what) {
  for (let i = 0; i < 500 && !g.closedAt; i++) await sleep(10);
  if (!g.closedAt) throw new Error(`${what}: the origin's connection was still open 5s after the client left`);
  if (!g.closedWhilePausing) throw new Error(`${what}: the origin's connection closed only after it wrote again`);
  return (g.closedAt - since).toFixed(1);
}

async function openaiAbortAfterThreeTokens() {
  const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "test", maxRetries: 0 });
  const controller = new AbortController();
  const stream = await client.chat.completions.create(
    { model: "m", messages: [{ role: "user", content: "hi" }], stream: true }, { signal: controller.signal });
  let tokens = 0, abortedAt = 0;
  try {
    for await (const chunk of stream) {
      if (!chunk.choices[0].delta.content.startsWith("tok")) throw new Error("openai: bad chunk");
      if (++tokens === 3) { abortedAt = performance.now(); controller.abort(); }
    }
  } catch (e) {
    if (!abortedAt) throw e;
  }
  const g = generations.at(-1);
  return `openai client, aborted after 3 tokens in a pause: origin closed ${await originClosed(g, abortedAt, "openai")} ms later`;
}

async function openaiAbortWhileThinking() {
  const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "test", maxRetries: 0,
                              defaultHeaders: { "x-think-first": "1" } });
  const controller = new AbortController();
  const before = generations.length;
  const pending = client.chat.completions.create(
    { model: "m", messages: [{ role: "user", content: "hi" }], stream: true }, { signal: controller.signal });
  for (let i = 0; i < 500 && generations.length === before; i++) await sleep(10);
  const abortedAt = performance.now();
  controller.abort();
  await pending.then(() => { throw new Error("openai: the request was not aborted"); }, () => {});
  const g = generations.at(-1);
  return `openai client, aborted before the first token: origin closed ${await originClosed(g, abortedAt, "openai thinking")} ms later`;
}

async function ollamaAbortAfterThreeTokens() {
  const ollama = new Ollama({ host: base });
  const stream = await ollama.chat({ model: "m", messages: [{ role: "user", content: "hi" }], stream: true });
  let tokens = 0, abortedAt = 0;
  try {
    for await (const part of stream) {
      if (!part.message.content.startsWith("tok")) throw new Error("ollama: bad part");
      if (++tokens === 3) { abortedAt = performance.now(); stream.abort(); }
    }
  } catch (e) {
    if (!abortedAt) throw e;
  }
  const g = generations.at(-1);
  return `ollama client, aborted after 3 tokens in a pause: origin closed ${await originClosed(g, abortedAt, "ollama")} ms later`;
}

async function curlKilledMidStream() {
  const curl = spawn("curl", ["-N", "-s", `${base}/stream`], { stdio: ["ignore", "pipe", "ignore"] });
  let out = "";
  await new Promise((resolve, reject) => {
    curl.stdout.on("data", (d) => { out += d; if ((out.match(/data: /g) || []).length >= 3) resolve(); });
    curl.on("exit", () => reject(new Error("curl ended before three tokens: " + out)));
  });
  curl.removeAllListeners("exit");
  const killedAt = performance.now();
  curl.kill("SIGINT");  // Ctrl-C
  const g = generations.at(-1);
  return `curl -N, interrupted after 3 tokens in a pause: origin closed ${await originClosed(g, killedAt, "curl")} ms later`;
}

try {
  const results = [];
  for (const t of [openaiAbortAfterThreeTokens, openaiAbortWhileThinking, ollamaAbortAfterThreeTokens, curlKilledMidStream])
    results.push(await t());
  console.log(results.join("\n"));
} catch (e) {
  sluice.kill("SIGKILL");
  fail(e.stack || e.message);
}
sluice.kill("SIGTERM");
model.close();
process.exit(0);
