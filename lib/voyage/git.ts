// Transition shim (issue #14): the git mechanics live in lib/git/ now; this
// goes once the flagship's importers point there.
export * from "../git/bundle.ts";
export * from "../git/checkout.ts";
export * from "../git/commit.ts";
export * from "../git/land.ts";
export * from "../git/repo.ts";
export * from "../git/verify.ts";
export { GIT_EMAIL, GIT_NAME } from "../git/exec.ts";
export { taskSideBranch, voyageBranch } from "../git/refs.ts";
