/**
 * Long-poll waiters in a process of their own (so a thousand responses are not timed by a
 * busy load generator): `tsx bench/lib/waiters.ts <url> <count> <authorization>` opens
 * `count` requests at once, prints `ready`, then prints the wall-clock time (ms, with
 * fractions) at which each answer arrived, as one JSON array.
 */
import http from "node:http";

const [url = "", count = "0", authorization = ""] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });
const woken: number[] = [];
let open = Number(count);
for (let i = 0; i < Number(count); i++) {
  http
    .get(url, { agent, headers: { authorization } }, (res) => {
      res.resume();
      res.on("end", () => {
        woken.push(performance.timeOrigin + performance.now());
        if (--open === 0) process.stdout.write(`${JSON.stringify(woken)}\n`, () => process.exit(0));
      });
    })
    .on("error", () => {
      if (--open === 0) process.stdout.write(`${JSON.stringify(woken)}\n`, () => process.exit(0));
    });
}
process.stdout.write("ready\n");
