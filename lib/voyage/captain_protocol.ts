// Transition shim (issue #14): lib/voyage/protocol.ts; goes once its
// flagship importers point there.
export * from "./protocol.ts";
