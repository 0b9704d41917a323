// Transition shim (issue #14): lib/git/credential.ts; goes with its last importer.
export * from "./git/credential.ts";
