/**
 * Long-poll waiters in a process of their own, as lean as a load generator must be for a
 * thousand answers arriving at once not to be timed by their own client: raw TCP sockets
 * that send one prebuilt HTTP/1.1 request each and note when its answer's first bytes
 * arrive. `tsx bench/lib/waiters.ts <url> <count> <authorization>` prints `ready` once every
 * request is sent, then the wall-clock times (ms, with fractions) of the answers as one JSON array.
 */
import net from "node:net";

const [url = "", count = "0", authorization = ""] = process.argv.slice(2);
const target = new URL(url);
const request = Buffer.from(
  `GET ${target.pathname}${target.search} HTTP/1.1\r\nHost: ${target.host}\r\nAuthorization: ${authorization}\r\n\r\n`,
);
const woken: number[] = [];
let open = Number(count);
let sent = 0;
const done = () => {
  if (--open === 0) process.stdout.write(`${JSON.stringify(woken)}\n`, () => process.exit(0));
};
for (let i = 0; i < Number(count); i++) {
  const socket = net.connect(Number(target.port), target.hostname, () => {
    socket.write(request);
    if (++sent === Number(count)) process.stdout.write("ready\n");
  });
  socket.once("data", () => {
    woken.push(performance.timeOrigin + performance.now());
    // Kept open, as a long-polling client keeps its connection for the next poll.
    done();
  });
  socket.once("error", () => done());
}
