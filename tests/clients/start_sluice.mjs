// Starts the sluice binary on a config file and resolves, once its "listening"
// line for listener `public` is out, with the process and that listener's port.
import { spawn } from "node:child_process";

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
