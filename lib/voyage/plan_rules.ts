// Transition shim: the files the habits change edits import this path until
// it lands; then they import plan/plan_rules.ts and this goes.
export * from "./plan/plan_rules.ts";
