// socket.io long-polling against TWO upstream servers through sluice. Without
// affinity, a client's polls land on the server that did not issue its session
// id and fail with "Session ID unknown"; with lb_policy sticky (sluice's own
// cookie, no app change) or hash on the source IP every client completes.
// The round-robin run must fail, which proves the test can tell.
// Exit 0 on the expected results, 77 when the npm packages are missing.
import { createRequire } from "node:module";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { startSluice, tempDir } from "./start_sluice.mjs";

const [sluiceBin, modulesDir] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(modulesDir), "noop.js"));
let Server, ioClient;
try {
  ({ Server } = require("socket.io"));
  ioClient = require("socket.io-client").io;
} catch (e) {
  console.error("!!!! SKIPPING: socket.io packages are not installed (npm missing?): " + e.message);
  process.exit(77);
}
setTimeout(() => { console.error("FAIL: timed out after 90s"); process.exit(1); }, 90000).unref();

let unknownSessions = 0;
async function startServer(name) {
  const server = http.createServer();
  const io = new Server(server);
  io.engine.on("connection_error", (err) => { if (/Session ID unknown/.test(err.message)) unknownSessions++; });
  io.on("connection", (socket) => {
    socket.on("ping-me", (n, ack) => ack({ n, server: name }));
    socket.emit("welcome", name);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { io, server, port: server.address().port };
}
const a = await startServer("a");
const b = await startServer("b");

async function runSluice(policy) {
  const extra = policy === "hash" ? ", lb_policy: hash, hash_on: {source_ip: true}" : `, lb_policy: ${policy}`;
  const config = `
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters: [{name: chat, endpoints: ["127.0.0.1:${a.port}", "127.0.0.1:${b.port}"]${extra}}]
routes: [{name: socketio, match: {path_prefix: /socket.io/}, cluster: chat}]
timeouts: {drain_delay: 0s, drain: 1s}
`;
  const file = path.join(tempDir("sluice-sio2-"), "config.yaml");
  fs.writeFileSync(file, config);
  return startSluice(sluiceBin, file, ["--workers", "1", "--log-level", "warn"]);
}

// One client: default transports (long-polling first), ten acked round trips.
function client(port) {
  return new Promise((resolve) => {
    // withCredentials gives the Node client a cookie jar, as a browser has.
    const socket = ioClient(`http://127.0.0.1:${port}`, { reconnection: false, withCredentials: true, timeout: 5000 });
    let done = false;
    const finish = (result) => { if (!done) { done = true; socket.close(); resolve(result); } };
    socket.on("connect_error", (e) => finish({ ok: false, why: "connect_error " + e.message }));
    socket.on("disconnect", (reason) => finish({ ok: false, why: "disconnect " + reason }));
    socket.on("welcome", async (server) => {
      try {
        const servers = new Set([server]);
        for (let i = 0; i < 10; i++) {
          const reply = await socket.timeout(3000).emitWithAck("ping-me", i);
          servers.add(reply.server);
        }
        finish({ ok: servers.size === 1, why: `served by ${[...servers]}` });
      } catch (e) {
        finish({ ok: false, why: e.message });
      }
    });
  });
}

async function trial(policy) {
  unknownSessions = 0;
  const s = await runSluice(policy);
  const results = await Promise.all(Array.from({ length: 8 }, () => client(s.port)));
  s.proc.kill("SIGKILL");
  const ok = results.filter((r) => r.ok).length;
  console.log(`${policy}: ${ok}/8 clients completed, ${unknownSessions} "Session ID unknown" errors` +
              (ok < 8 ? ` (${results.find((r) => !r.ok).why})` : ""));
  return { ok, unknownSessions };
}

const sticky = await trial("sticky");
const hash = await trial("hash");
const roundRobin = await trial("round_robin");
a.io.close(); b.io.close();
let failed = false;
if (sticky.ok !== 8 || sticky.unknownSessions !== 0) { console.error("FAIL: sticky must keep every client on one server"); failed = true; }
if (hash.ok !== 8 || hash.unknownSessions !== 0) { console.error("FAIL: hash on source IP must keep every client on one server"); failed = true; }
if (roundRobin.unknownSessions === 0) { console.error("FAIL: round robin should have split sessions: the test cannot tell"); failed = true; }
process.exit(failed ? 1 : 0);
