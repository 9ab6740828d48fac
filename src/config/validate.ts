import { readFileSync } from "node:fs";
import type { z } from "zod";
import { RuntimeError } from "../errors.ts";

/** `process.args[0]` style path of a zod issue. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out ? `.${String(key)}` : String(key);
  }
  return out || "(top level)";
}

/** Validates parsed JSON against a schema; the error names the file, the field and what was expected. */
export function validate<T extends z.ZodType>(schema: T, data: unknown, file: string): z.infer<T> {
  const result = schema.safeParse(data);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  if (!issue) throw new RuntimeError(`${file}: invalid`);
  throw new RuntimeError(`${file}: field "${fieldPath(issue.path)}": ${issue.message}`);
}

/** Reads and validates a JSON file; a missing file or a syntax error is reported with the path. */
export function readJsonFile<T extends z.ZodType>(schema: T, file: string): z.infer<T> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new RuntimeError(`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new RuntimeError(`${file}: invalid JSON: ${(err as Error).message}`);
  }
  return validate(schema, data, file);
}
