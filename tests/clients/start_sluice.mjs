// What the node client tests share: starting sluice, and a temporary directory.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

// A new directory under the system's temporary one, removed when the test's
// process exits however it exits (process.exit included).
export function tempDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// Starts the sluice binary on a config file and resolves, once its "listening"
// line for listener `public` is out, with the process and that listener's port.
export function startSluice(sluiceBin, configPath, extraArgs = []) {
  const proc = spawn(sluiceBin, ["run", "--config", configPath, "--admin", "127.0.0.1:0", ...extraArgs],
                     { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    let buf = "";
    proc.stdout.on("data", (d) => {
      buf += d;
      const m = buf.match(/listening name=public address=127\.0\.0\.1:(\d+)/);
      if (m) resolve({ proc, port: Number(m[1]) });
    });
    proc.on("exit", (code) => reject(new Error("sluice exited " + code)));
  });
}
