// Transition shim: the files the habits change edits import this path until
// it lands; then they import plan/dag.ts and this goes.
export * from "./plan/dag.ts";
