/**
 * Small validators for state files. They throw TypeError with a message that
 * names the field; readJsonFile turns that into an error naming the file.
 */
export type Obj = Record<string, unknown>;

export function expectObject(v: unknown, what: string): Obj {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new TypeError(`${what}: expected a JSON object`);
  }
  return v as Obj;
}

export function requireString(o: Obj, key: string, what: string): string {
  const v = o[key];
  if (typeof v !== "string" || v === "") {
    throw new TypeError(`${what}: "${key}" must be a non-empty string`);
  }
  return v;
}

export function optionalString(
  o: Obj,
  key: string,
  what: string,
): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") {
    throw new TypeError(`${what}: "${key}" must be a string`);
  }
  return v;
}

export function optionalObject(
  o: Obj,
  key: string,
  what: string,
): Obj | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  return expectObject(v, `${what} ("${key}")`);
}
