// Transition: lib/daemon/daemon.ts imports this here until the habits
// change lands; then it imports checks.ts and this file goes.
export { illegalTransition } from "./checks.ts";
