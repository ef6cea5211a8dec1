/** Small input rules shared by the domain modules. */

/** Whether text holds a C0 control character or DEL (names and descriptions must not). */
export function hasControlCharacters(text: string): boolean {
  for (const ch of text) {
    const code = ch.codePointAt(0) ?? 0;
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}
