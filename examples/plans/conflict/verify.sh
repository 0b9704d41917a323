#!/usr/bin/env bash
# Exit criteria for the conflict voyage. Runs in a checkout of the voyage branch.
set -eu

test -f greeting.txt || { echo "verify: greeting.txt is missing" >&2; exit 1; }
case "$(cat greeting.txt)" in
  "hello, world" | "bonjour, le monde") echo "greeting.txt holds one greeting: $(cat greeting.txt)" ;;
  *) echo "verify: greeting.txt holds neither greeting" >&2; exit 1 ;;
esac
