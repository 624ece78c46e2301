import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { ErrorCodes } from "../src/errors.ts";

test("every error code is documented in docs/errors.md", async () => {
  const doc = await readFile(new URL("../../docs/errors.md", import.meta.url), "utf8");
  for (const code of Object.keys(ErrorCodes))
    assert.ok(doc.includes(`\`${code}\``), `${code} is not documented`);
  for (const [, documented] of doc.matchAll(/`(MOSAIC_ERR_[A-Z_]+)`/g)) {
    assert.ok(
      Object.hasOwn(ErrorCodes, documented as string),
      `${documented} is documented but does not exist`,
    );
  }
});
