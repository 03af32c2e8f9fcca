// A drain as a socket.io app sees it: a client on sluice A (WebSocket
// transport) is told "going away" (Close 1001) when A drains, and its own
// reconnection logic lands on sluice B, where it goes on talking. In front of
// both sits what a Kubernetes Service does for the client: a TCP forwarder
// that sends each new connection to the first sluice that accepts it.
// Exit 0 when it works, 77 when the npm packages are missing.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { tempDir } from "./start_sluice.mjs";

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
setTimeout(() => { console.error("FAIL: timed out after 60s"); process.exit(1); }, 60000).unref();
const fail = (why) => { console.error("FAIL: " + why); process.exit(1); };

// The app: one socket.io server behind both sluices.
const app = http.createServer();
const io = new Server(app);
io.on("connection", (socket) => socket.on("ping-me", (n, ack) => ack(n)));
await new Promise((r) => app.listen(0, "127.0.0.1", r));

async function runSluice(name) {
  const dir = tempDir(`sluice-sio-drain-${name}-`);
  fs.writeFileSync(path.join(dir, "config.yaml"), `
listeners: [{name: public, address: 127.0.0.1, port: 0}]
clusters: [{name: chat, endpoints: ["127.0.0.1:${app.address().port}"]}]
routes: [{name: socketio, match: {path_prefix: /socket.io/}, cluster: chat}]
timeouts: {drain_delay: 0s, drain: 1s}
`);
  const proc = spawn(sluiceBin, ["run", "--config", path.join(dir, "config.yaml"), "--admin", "127.0.0.1:0",
                                 "--workers", "1", "--log-level", "warn"], { stdio: ["ignore", "pipe", "inherit"] });
  const [port, admin] = await new Promise((resolve, reject) => {
    let buf = "";
    proc.stdout.on("data", (d) => {
      buf += d;
      const p = buf.match(/listening name=public address=127\.0\.0\.1:(\d+)/);
      const a = buf.match(/admin listening address=127\.0\.0\.1:(\d+)/);
      if (p && a) resolve([Number(p[1]), Number(a[1])]);
    });
    proc.on("exit", (code) => reject(new Error(`sluice ${name} exited ${code}`)));
  });
  const exited = new Promise((r) => proc.on("exit", (code) => r(code)));
  return { name, proc, port, admin, exited };
}

async function websockets(s) {
  const res = await fetch(`http://127.0.0.1:${s.admin}/connections?kind=websocket`);
  return (await res.json()).total;
}

const a = await runSluice("a");
const b = await runSluice("b");
const backends = [a, b];
const service = net.createServer((client) => {
  const tryFrom = (i) => {
    if (i >= backends.length) return client.destroy();
    const upstream = net.connect(backends[i].port, "127.0.0.1");
    upstream.once("error", () => tryFrom(i + 1));  // refused: that one stopped listening
    upstream.once("connect", () => {
      upstream.removeAllListeners("error");
      client.pipe(upstream).pipe(client);
      const end = () => { client.destroy(); upstream.destroy(); };
      client.on("error", end); upstream.on("error", end); client.on("close", end); upstream.on("close", end);
    });
  };
  tryFrom(0);
});
await new Promise((r) => service.listen(0, "127.0.0.1", r));

const socket = ioClient(`http://127.0.0.1:${service.address().port}`,
                        { transports: ["websocket"], reconnectionDelay: 100, reconnectionDelayMax: 200 });
const connected = () => new Promise((r) => socket.once("connect", r));
await connected();
if ((await socket.timeout(3000).emitWithAck("ping-me", 1)) !== 1) fail("no answer through sluice a");
if ((await websockets(a)) !== 1) fail("the session is not on sluice a");

const disconnected = new Promise((r) => socket.once("disconnect", (reason, details) => r({ reason, details })));
const reconnected = new Promise((r) => socket.io.once("reconnect", r));
a.proc.kill("SIGTERM");
const { reason, details } = await disconnected;
const code = details?.context?.code;
console.log(`sluice a drained: the client saw "${reason}" with WebSocket close code ${code}`);
if (code !== 1001) fail(`close code ${code}, want 1001 (going away)`);
await reconnected;
if ((await socket.timeout(3000).emitWithAck("ping-me", 2)) !== 2) fail("no answer after reconnecting");
if ((await websockets(b)) !== 1) fail("the session did not move to sluice b");
if ((await a.exited) !== 0) fail("sluice a did not exit 0 after its drain");
console.log("the client reconnected through sluice b and goes on");
socket.close();
b.proc.kill("SIGTERM");
await b.exited;
service.close();
io.close();
process.exit(0);
