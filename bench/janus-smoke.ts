/**
 * Smoke test of bench/janus.ts: Janus up, one room, a moving camera published, 1 then 10
 * concurrent viewers timed to their first frame and checked for moving frames, Janus down.
 *
 *   timeout 120 npx tsx bench/janus-smoke.ts
 */

import { movingCamera, statsOfType } from "../test/helpers/wrtc.js";
import { janusCreateRoom, janusPublish, janusViewUntilFirstFrame, startJanus } from "./janus.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const failures: string[] = [];

const janus = await startJanus();
console.log(`Janus ${janus.url} (pid ${janus.pid})`);
const camera = movingCamera();
try {
  await janusCreateRoom(janus.url, 1);
  const publisher = await janusPublish(janus.url, 1, camera.track);
  await sleep(2000); // past the publisher's first key frames, as the bench waits
  for (const count of [1, 10]) {
    const viewers = await Promise.all(
      Array.from({ length: count }, () => janusViewUntilFirstFrame(janus.url, 1, publisher.feedId)),
    );
    await sleep(1000); // a second of frames to compare
    for (const [i, v] of viewers.entries()) {
      const pair = (await statsOfType(v.pc, "candidate-pair")).find((p) => p.state === "succeeded" && p.nominated);
      const local = (await statsOfType(v.pc, "local-candidate")).find((c) => c.id === pair?.localCandidateId);
      const remote = (await statsOfType(v.pc, "remote-candidate")).find((c) => c.id === pair?.remoteCandidateId);
      const path = `${local?.address}:${local?.port} -> ${remote?.address}:${remote?.port}`;
      const lumas = new Set(v.frames).size;
      console.log(
        `${count} viewers #${i}: answer ${v.answerMs} ms, first frame ${v.firstFrameMs} ms, ${v.frames.length} frames, ${lumas} distinct lumas, ${path}`,
      );
      if (!Number.isFinite(v.firstFrameMs)) failures.push(`${count}/#${i}: no frame`);
      if (lumas < 2) failures.push(`${count}/#${i}: frames do not change`);
      // Janus's end must be loopback; the viewer's may be any of its host candidates (libwebrtc
      // pairs them all with Janus's), which the kernel delivers over lo as well.
      if (remote?.address !== "127.0.0.1") failures.push(`${count}/#${i}: Janus not on loopback: ${path}`);
    }
    await Promise.all(viewers.map((v) => v.close()));
  }
  await publisher.close();
} catch (e) {
  failures.push(String((e as Error).stack ?? e));
} finally {
  camera.stop();
  await janus.stop();
}
let janusGone = false;
try {
  process.kill(janus.pid, 0);
} catch {
  janusGone = true;
}
if (!janusGone) failures.push(`Janus (pid ${janus.pid}) still runs`);
console.log(failures.length === 0 ? "OK" : `FAILED:\n${failures.join("\n")}`);
process.exit(failures.length === 0 ? 0 : 1);
