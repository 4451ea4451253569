// Starts the Firebase Auth Emulator (firebase-tools, pinned in package.json) for Keybridge's tests
// and makes sure it dies with the test process that started it.
//
//   node launch.js --port 9099 [--project demo-keybridge] [--parent PID] [--log FILE]
//
// FILE (where the caller sends this process's output) is deleted on a clean stop, and kept when
// the emulator fails, for the test's error message.
//
// The emulator runs inside this Node process (firebase-tools' CLI is loaded in-process), so there
// is exactly one process to clean up. It writes a private firebase.json (this folder's, with the
// port changed) to a temporary directory and runs there, with TMPDIR pointing at it, so parallel
// runs do not share the emulator hub's locator file or debug logs.
//
// A test binary cannot kill a process it keeps in a static (destructors do not run), so this
// process watches its parent instead: it exits when stdin reaches end of file (the parent's end of
// the pipe closes when the parent dies, however it dies), or when the parent PID is gone.
"use strict";

const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const port = Number(arg("port", "9099"));
const project = arg("project", "demo-keybridge");
const parent = Number(arg("parent", "0"));
const logFile = arg("log", "");
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`launch.js: bad --port ${arg("port")}`);
  process.exit(2);
}

const here = __dirname;
const cli = path.join(here, "node_modules", "firebase-tools", "lib", "bin", "firebase.js");
if (!fs.existsSync(cli)) {
  console.error(`launch.js: ${cli} is missing: run \`npm ci\` in ${here} (./scripts/test.sh does)`);
  process.exit(2);
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keybridge-firebase-emulator-"));
function cleanup() {
  try {
    fs.rmSync(dir, { recursive: true, force: true });
  } catch (_) {
    // best effort
  }
}
function die(why) {
  console.log(`launch.js: ${why}; stopping the emulator`);
  cleanup();
  if (logFile) {
    try {
      fs.rmSync(logFile, { force: true });
    } catch (_) {
      // best effort
    }
  }
  process.exit(0);
}

const config = JSON.parse(fs.readFileSync(path.join(here, "firebase.json"), "utf8"));
config.emulators.auth = { host: "127.0.0.1", port };
config.emulators.ui = { enabled: false };
fs.writeFileSync(path.join(dir, "firebase.json"), JSON.stringify(config, null, 2));

// The watchdog.
if (!process.stdin.isTTY) {
  process.stdin.on("end", () => die("stdin closed (the test process is gone)"));
  process.stdin.on("error", () => die("stdin failed"));
  process.stdin.resume();
}
if (parent > 0) {
  setInterval(() => {
    let alive = process.ppid === parent;
    if (alive) {
      try {
        process.kill(parent, 0);
      } catch (_) {
        alive = false;
      }
    }
    if (!alive) die(`parent ${parent} exited`);
  }, 250).unref();
}
process.on("exit", cleanup);

// Run the CLI in this process, from the private directory.
process.env.TMPDIR = dir;
process.chdir(dir);
process.argv = [
  process.argv[0],
  cli,
  "emulators:start",
  "--only",
  "auth",
  "--project",
  project,
  "--config",
  path.join(dir, "firebase.json"),
];
require(cli);
