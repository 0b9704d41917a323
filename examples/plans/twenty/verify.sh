#!/usr/bin/env bash
# Exit criteria for the twenty-task voyage. Runs in a checkout of the voyage branch.
set -eu

fail() { echo "verify: $*" >&2; exit 1; }

for n in $(seq 1 20); do
  f=$(printf 'twenty/%02d.txt' "$n")
  test -f "$f" || fail "$f is missing"
done

test "$(cat twenty/01.txt)" = start || fail "twenty/01.txt should read start"
for n in 2 3 4 5 6 7 8; do
  test "$(cat "twenty/0$n.txt")" = "part $n" || fail "twenty/0$n.txt should read part $n"
done
step=1
for n in 09 10 11 12 13 14 15; do
  test "$(cat "twenty/$n.txt")" = "$step" || fail "twenty/$n.txt should read $step"
  step=$((step + 1))
done
test "$(wc -l < twenty/16.txt | tr -d ' ')" = 7 || fail "twenty/16.txt should have 7 lines"
for n in 17 18 19; do
  test "$(cat "twenty/$n.txt")" = "check $((n - 16)): 7 parts" || fail "twenty/$n.txt is wrong"
done
test "$(cat twenty/20.txt)" = done || fail "twenty/20.txt should read done"

echo "All exit criteria passed!"
