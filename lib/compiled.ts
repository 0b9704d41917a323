/**
 * Whether this process is a compiled ohcommodore, and so can install
 * itself on VMs. `Deno.build.standalone` is true in every `deno compile`d
 * binary, --self-extracting ones included (their modules live in
 * `<exe dir>/.<exe name>/<hash>/`, so the module URL says nothing).
 */
export function isCompiled(
  build: { standalone?: boolean } = Deno.build,
): boolean {
  return build.standalone === true;
}

/** This executable when it is a compiled ohcommodore, else null. */
export function compiledSelf(
  build: { standalone?: boolean } = Deno.build,
): string | null {
  return isCompiled(build) ? Deno.execPath() : null;
}
