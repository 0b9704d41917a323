/**
 * A published release for tests: `publish` lays a binary out as
 * lib/release.ts says (this platform's name, SHA256SUMS), `serveRelease`
 * serves a directory on loopback over HTTP and records every path asked
 * for.
 */
import { sha256Hex } from "../../lib/deploy.ts";
import { releaseBinary, sha256sums, SUMS_FILE } from "../../lib/release.ts";

/** A release on loopback: the files of `dir`, and every path asked for. */
export function serveRelease(dir: string) {
  const asked: string[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      const path = new URL(req.url).pathname;
      asked.push(path);
      try {
        return new Response(await Deno.readFile(`${dir}${path}`));
      } catch {
        return new Response("not found", { status: 404 });
      }
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    asked,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

export async function publish(dir: string, bin: string, sums?: string) {
  const name = releaseBinary(Deno.build.target);
  await Deno.copyFile(bin, `${dir}/${name}`);
  await Deno.writeTextFile(
    `${dir}/${SUMS_FILE}`,
    sums ?? sha256sums({
      [name]: await sha256Hex(await Deno.readFile(bin)),
      "ohcommodore-other-target": "0".repeat(64),
    }),
  );
  return name;
}
