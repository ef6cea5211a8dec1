/**
 * Buddy pictures: a `Status` may carry one as a data URL; it is checked (declared type,
 * magic number, size) and replaced by a reference (`img:<id>/picture.<ext>`) the web client
 * loads from `/static/img/buddy/...`. The images are kept in memory on the node that
 * received them, one per session; in a cluster their ids start with that node's id
 * (`<node>_<random>`), so any node knows whom to ask for one.
 */
import { randomBytes } from "node:crypto";
import { BadDocument } from "./documents.js";

export const MAX_IMAGE = 256 * 1024;
export const IMAGE_TYPES: readonly string[] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

export interface Image {
  readonly id: string;
  readonly contentType: string;
  readonly data: Buffer;
}

/** Magic numbers of the picture types accepted, so a declared type is the real one. */
const IMAGE_MAGIC: Record<string, (b: Buffer) => boolean> = {
  "image/png": (b) => b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])),
  "image/jpeg": (b) => b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff,
  "image/gif": (b) => /^GIF8[79]a/.test(b.subarray(0, 6).toString("latin1")),
  "image/webp": (b) =>
    b.subarray(0, 4).toString("latin1") === "RIFF" && b.subarray(8, 12).toString("latin1") === "WEBP",
};

/** A buddy picture sent as a data URL: checked, then its reference and the image to keep (its id after `idPrefix`). */
export function checkPicture(dataUrl: string, idPrefix = ""): { reference: string; image: Image } {
  const m = /^data:(image\/(?:png|jpeg|gif|webp));base64,([A-Za-z0-9+/=]+)$/.exec(dataUrl);
  const type = m?.[1];
  const data = m?.[2] === undefined ? undefined : Buffer.from(m[2], "base64");
  if (type === undefined || data === undefined || data.length === 0 || data.length > MAX_IMAGE) {
    throw new BadDocument("bad_request", "buddyPicture must be a base64 PNG, JPEG, GIF or WebP data URL up to 256 KiB");
  }
  if (!IMAGE_MAGIC[type]?.(data)) {
    throw new BadDocument("bad_request", `buddyPicture's bytes are not ${type}`);
  }
  const imageId = idPrefix + randomBytes(15).toString("base64url");
  return {
    reference: `img:${imageId}/picture.${type === "image/jpeg" ? "jpg" : type.slice("image/".length)}`,
    image: { id: imageId, contentType: type, data },
  };
}
