/** Debian's Chromium, headless, as every browser test starts it. */
import { type Browser, chromium } from "playwright-core";

/** Flags for a closed network: no background fetches, no first-run work. */
const BASE_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

export function launchChromium(extraArgs: readonly string[] = []): Promise<Browser> {
  return chromium.launch({ executablePath: "/usr/bin/chromium", args: [...BASE_ARGS, ...extraArgs] });
}
