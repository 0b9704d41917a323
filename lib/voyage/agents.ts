// Transition shim (issue #14): lib/voyage/ship/agents/; goes once its
// flagship importers point there.
export { type AgentKind, validateAgentChoice } from "./ship/agents/kinds.ts";
