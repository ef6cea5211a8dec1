/**
 * Summarizes a V8 .cpuprofile (from `node --cpu-prof`): the functions with the most self
 * time, and the most inclusive time, as percentages of the samples.
 *
 *   npx tsx bench/tools/cpuprofile-summary.ts <file.cpuprofile> [top=30]
 */
import fs from "node:fs";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

const [file = "", topArg = "30"] = process.argv.slice(2);
const profile = JSON.parse(fs.readFileSync(file, "utf8")) as Profile;
const top = Number(topArg);
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const self = new Map<number, number>();
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i] as number;
  self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
}
const total = [...self.values()].reduce((a, b) => a + b, 0);
const label = (n: Node) => {
  const url = n.callFrame.url
    .replace(/^file:\/\//, "")
    .replace(/.*\/node_modules\//, "~/")
    .replace(/.*\/work\/main\//, "");
  return `${n.callFrame.functionName || "(anonymous)"} ${url}:${n.callFrame.lineNumber + 1}`;
};
const selfBy = new Map<string, number>();
const inclusiveBy = new Map<string, number>();
for (const [id, t] of self) {
  const n = byId.get(id) as Node;
  selfBy.set(label(n), (selfBy.get(label(n)) ?? 0) + t);
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const l = label(byId.get(cur) as Node);
    if (seen.has(l)) continue;
    seen.add(l);
    inclusiveBy.set(l, (inclusiveBy.get(l) ?? 0) + t);
  }
}
const print = (title: string, m: Map<string, number>) => {
  console.log(`\n${title}`);
  for (const [l, t] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${((t / total) * 100).toFixed(1).padStart(5)}%  ${l}`);
  }
};
print("self time", selfBy);
print("inclusive time", inclusiveBy);
