// Runs a MicroPython script inside the 32-bit WebAssembly MicroPython (npm
// @micropython/micropython-webassembly-pyscript) under Node, like `micropython script.py args`:
//   node wasm_run.mjs [--heap BYTES] [--copy HOSTDIR=MPDIR]... [--path MPDIR]... SCRIPT.py [ARGS...]
// --copy copies the regular files of HOSTDIR into the interpreter's in-memory filesystem at MPDIR;
// --path prepends MPDIR to sys.path; the arguments are in the global ARGV (sys.argv is read-only here). Python's stdout/stderr go to ours; an uncaught Python exception
// prints its traceback on stderr and exits 1.
import fs from "fs";
import path from "path";
import { fileURLToPath } from "url";

const here = path.dirname(fileURLToPath(import.meta.url));
const pkg = path.join(here, "..", "..", "node_modules", "@micropython", "micropython-webassembly-pyscript",
  "micropython.mjs");
const { loadMicroPython } = await import(pkg);

let heap = 4 * 1024 * 1024;
const copies = [];
const paths = [];
let args = process.argv.slice(2);
while (args.length && args[0].startsWith("--")) {
  const [flag, value] = [args[0], args[1]];
  if (flag === "--heap") heap = parseInt(value, 10);
  else if (flag === "--copy") copies.push(value.split("="));
  else if (flag === "--path") paths.push(value);
  else { console.error(`unknown option ${flag}`); process.exit(2); }
  args = args.slice(2);
}
if (!args.length) { console.error("usage: wasm_run.mjs [options] SCRIPT.py [ARGS...]"); process.exit(2); }

const mp = await loadMicroPython({
  heapsize: heap,
  linebuffer: false,
  stdout: (b) => process.stdout.write(b),
  stderr: (b) => process.stderr.write(b),
});
function mkdirs(dir) {
  let cur = "";
  for (const part of dir.split("/").filter(Boolean)) {
    cur += "/" + part;
    try { mp.FS.mkdir(cur); } catch (e) { /* exists */ }
  }
}
for (const [hostDir, mpDir] of copies) {
  mkdirs(mpDir);
  for (const name of fs.readdirSync(hostDir)) {
    const full = path.join(hostDir, name);
    if (fs.statSync(full).isFile()) mp.FS.writeFile(mpDir + "/" + name, fs.readFileSync(full));
  }
}
const script = fs.readFileSync(args[0], "utf8");
// This build cannot assign sys.argv: scripts read ARGV from their globals when it is defined.
const prologue = "import sys\nARGV = " + JSON.stringify(args) + "\n" +
  paths.map((p) => `sys.path.insert(0, ${JSON.stringify(p)})\n`).join("");
try {
  mp.runPython(prologue);
  mp.runPython(script);
} catch (error) {
  if (error.name !== "PythonError") throw error;
  if (error.type !== "SystemExit") {
    process.stderr.write(error.message.endsWith("\n") ? error.message : error.message + "\n");
    process.exitCode = 1;
  }
}
