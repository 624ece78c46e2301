// The operator's types come from the CRD schemas; this keeps them from drifting.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { generate } from "../../crds/gen-types.ts";

test("operator/src/api/crds.generated.ts matches the schemas in crds/ (else: npm run gen:types)", async () => {
  const current = await readFile(join(import.meta.dirname, "../src/api/crds.generated.ts"), "utf8");
  assert.equal(current, await generate());
});
