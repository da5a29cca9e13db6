// Copies the browser build of socket.io-client (an ES module, with its licence header) from
// node_modules into public/vendor, where the server serves it with the rest of the client.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const from = join(here, "node_modules", "socket.io-client", "dist");
const to = join(here, "public", "vendor");
mkdirSync(to, { recursive: true });
for (const file of ["socket.io.esm.min.js", "socket.io.esm.min.js.map"]) {
  copyFileSync(join(from, file), join(to, file));
}
console.log(`web: socket.io-client copied into ${to}`);
