#!/usr/bin/env bash
# Exit criteria for the demo voyage. Runs in a checkout of the voyage branch.
set -eu

fail() { echo "verify: $*" >&2; exit 1; }

for f in report/00-title.md report/10-ships.md report/20-tasks.md report/30-weather.md REPORT.md report/STATS.txt; do
  test -f "$f" || fail "$f is missing"
done

expected=$(cat report/00-title.md report/10-ships.md report/20-tasks.md report/30-weather.md)
test "$(cat REPORT.md)" = "$expected" || fail "REPORT.md is not the four parts in order"

head -n 1 REPORT.md | grep -qx '# Fleet report' || fail "REPORT.md does not start with its title"
for section in Ships Tasks Weather; do
  grep -qx "## $section" REPORT.md || fail "REPORT.md has no $section section"
done

lines=$(wc -l < REPORT.md | tr -d ' ')
test "$(cat report/STATS.txt)" = "lines: $lines" || fail "report/STATS.txt does not say lines: $lines"

echo "All exit criteria passed!"
