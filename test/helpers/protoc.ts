/**
 * Compiles fixture protos with protoc (Debian's protobuf-compiler) into descriptors, so
 * plugin and binder tests run on the same descriptors a real build produces.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createFileRegistry, type FileRegistry, fromBinary } from "@bufbuild/protobuf";
import { type FileDescriptorSet, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";

export const ROOT = path.resolve(import.meta.dirname, "../..");
export const FIXTURES = path.join(ROOT, "test/plugin/fixtures");

const INCLUDES = [FIXTURES, path.join(ROOT, "proto"), path.join(ROOT, "node_modules/google-proto-files")];

/** Runs protoc on `files` (relative to the fixtures folder) and returns the descriptor set. */
export function compileFixtures(files: readonly string[]): FileDescriptorSet {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rtcplane-protoc-"));
  const out = path.join(dir, "set.binpb");
  try {
    execFileSync(
      "protoc",
      [
        ...INCLUDES.map((i) => `-I${i}`),
        "--include_imports",
        "--include_source_info",
        `--descriptor_set_out=${out}`,
        ...files,
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    return fromBinary(FileDescriptorSetSchema, fs.readFileSync(out));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function fixtureRegistry(files: readonly string[]): FileRegistry {
  return createFileRegistry(compileFixtures(files));
}
