// socket.io through sluice: a real socket.io server behind sluice, clients with
// the default transport (HTTP long-polling, then the upgrade to WebSocket) and
// with transports: ["websocket"], messages both ways, while an NDJSON stream
// runs on another route. Exit 0 when all of it worked, 77 when npm packages
// are missing (the test is then skipped, loudly). With --tls, the same over
// HTTPS and wss:// (certificates made with the openssl CLI, trusted through a
// test CA only).
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import path from "node:path";
import { startSluice, tempDir } from "./start_sluice.mjs";

const [sluiceBin, modulesDir, mode] = process.argv.slice(2);
const useTls = mode === "--tls";
const require = createRequire(path.join(path.resolve(modulesDir), "noop.js"));
let Server, ioClient;
try {
  ({ Server } = require("socket.io"));
  ioClient = require("socket.io-client").io;
} catch (e) {
  console.error("!!!! SKIPPING: socket.io packages are not installed (npm missing?): " + e.message);
  process.exit(77);
}

const fail = (msg) => { console.error("FAIL: " + msg); process.exit(1); };
setTimeout(() => fail("timed out after 60s"), 60000).unref();

function listen(server) {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server.address().port)));
}

// The chat app: socket.io echoing, acking, and pushing.
const chatHttp = http.createServer();
const ioServer = new Server(chatHttp);
ioServer.on("connection", (socket) => {
  socket.on("ping-me", (payload, ack) => ack({ echoed: payload, transport: socket.conn.transport.name }));
  socket.on("shout", (text) => socket.emit("heard", text.toUpperCase()));
  socket.emit("welcome", { id: socket.id, transport: socket.conn.transport.name });
});
const chatPort = await listen(chatHttp);

// The LLM-ish server: an NDJSON token stream with pauses between tokens.
const llm = http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "application/x-ndjson" });
  let i = 0;
  const timer = setInterval(() => {
    res.write(JSON.stringify({ index: i, token: "t" + i }) + "\n");
    if (++i === 40) { clearInterval(timer); res.end(); }
  }, 25);
});
const llmPort = await listen(llm);

const dir = tempDir("sluice-sio-");
let tlsField = "", ca;
if (useTls) {
  const openssl = (...args) => execFileSync("openssl", args, { stdio: "ignore" });
  openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${dir}/ca.key`,
          "-out", `${dir}/ca.crt`, "-days", "2", "-subj", "/CN=sluice test CA");
  openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${dir}/tls.key`,
          "-out", `${dir}/tls.csr`, "-subj", "/CN=localhost");
  fs.writeFileSync(`${dir}/ext.cnf`, "subjectAltName=DNS:localhost\n");
  openssl("x509", "-req", "-in", `${dir}/tls.csr`, "-CA", `${dir}/ca.crt`, "-CAkey", `${dir}/ca.key`, "-CAcreateserial",
          "-out", `${dir}/tls.crt`, "-days", "2", "-extfile", `${dir}/ext.cnf`);
  tlsField = `, tls: {cert: ${dir}/tls.crt, key: ${dir}/tls.key}`;
  ca = fs.readFileSync(`${dir}/ca.crt`);
}
const config = `
listeners: [{name: public, address: 127.0.0.1, port: 0${tlsField}}]
clusters:
  - {name: chat, endpoints: ["127.0.0.1:${chatPort}"]}
  - {name: llm, endpoints: ["127.0.0.1:${llmPort}"]}
routes:
  - {name: socketio, match: {path_prefix: /socket.io/}, cluster: chat}
  - {name: llm, match: {path_prefix: /llm/}, rewrite: {path_prefix: /}, cluster: llm}
timeouts: {drain_delay: 0s, drain: 1s}
`;
const configPath = path.join(dir, "config.yaml");
fs.writeFileSync(configPath, config);
const { proc: sluice, port } = await startSluice(sluiceBin, configPath);
const base = useTls ? `https://localhost:${port}` : `http://127.0.0.1:${port}`;
const tlsOptions = useTls ? { ca, rejectUnauthorized: true } : {};

function streamTokens() {
  return new Promise((resolve, reject) => {
    (useTls ? https : http).get(`${base}/llm/generate`, tlsOptions, (res) => {
      let arrivals = 0, text = "";
      res.on("data", (d) => { arrivals++; text += d; });
      res.on("end", () => {
        const tokens = text.trim().split("\n").map((l) => JSON.parse(l));
        if (tokens.length !== 40 || tokens.some((t, i) => t.index !== i)) reject(new Error("stream mangled"));
        // Tokens 25ms apart must arrive as many separate reads, not one buffered blob.
        else if (arrivals < 20) reject(new Error(`stream arrived in only ${arrivals} reads: buffered?`));
        else resolve(`${tokens.length} tokens in ${arrivals} reads`);
      });
    }).on("error", reject);
  });
}

async function chat(name, options) {
  const socket = ioClient(base, { reconnection: false, ...tlsOptions, ...options });
  const welcome = await new Promise((resolve, reject) => {
    socket.on("welcome", resolve);
    socket.on("connect_error", (e) => reject(new Error(`${name}: connect_error ${e.message}`)));
  });
  if (!welcome.id) throw new Error(`${name}: no welcome`);
  const first = options.transports ? "websocket" : "polling";
  if (welcome.transport !== first) throw new Error(`${name}: connected over ${welcome.transport}, expected ${first}`);
  if (!options.transports) {
    // Default: starts with long-polling and upgrades to WebSocket through sluice.
    if (socket.io.engine.transport.name !== "websocket")
      await new Promise((resolve) => socket.io.engine.once("upgrade", resolve));
  }
  const transports = new Set();
  for (let i = 0; i < 20; i++) {
    const payload = { n: i, text: "x".repeat(i * 500) };
    const reply = await socket.timeout(5000).emitWithAck("ping-me", payload);
    if (JSON.stringify(reply.echoed) !== JSON.stringify(payload)) throw new Error(`${name}: bad echo`);
    transports.add(reply.transport);
    socket.emit("shout", "hello " + i);
    const heard = await new Promise((resolve) => socket.once("heard", resolve));
    if (heard !== ("hello " + i).toUpperCase()) throw new Error(`${name}: bad push`);
  }
  socket.close();
  if (!transports.has("websocket")) throw new Error(`${name}: never on WebSocket (${[...transports]})`);
  return `${name}: connected over ${welcome.transport}, 20 round trips over ${[...transports].join("+")}`;
}

try {
  const results = await Promise.all([
    streamTokens(),
    chat("default transports", {}),
    chat("websocket only", { transports: ["websocket"] }),
    chat("default transports again", {}),
  ]);
  console.log((useTls ? "over TLS: " : "") + results.join("\n"));
} catch (e) {
  sluice.kill("SIGKILL");
  fail(e.message);
}
sluice.kill("SIGTERM");
ioServer.close();
llm.close();
process.exit(0);
