// Transition shim (issue #14): lib/voyage/ship/agent_env.ts; goes once its
// flagship importers point there.
export * from "./ship/agent_env.ts";
