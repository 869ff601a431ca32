#!/usr/bin/env bash
# run.sh: runs every test given (a test program, or a tests/*.sh script run with bash),
# each to its end even after another failed, and sums their closing lines
# `N passed, M failed, K skipped` into one line of the same form, the last line printed.
# A test that crashes, exits non-zero with no failure counted, or prints no closing line
# counts as one failure more, and is named. Exit status 1 if anything failed. A test prints
# one closing line; of several, the last counts, so a script running several tallies sums them.
# The summary also lists the slowest tests with their seconds.
#   usage: MTP_BUILD=build tests/run.sh build/tests/test_ops ... tests/test_resume.sh ...
# Run from the repository root (the scripts expect it); MTP_BUILD is passed on to them.
set -u
closing='^([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$'
passed=0 failed=0 skipped=0
problems=()
times=() # "seconds test" per test, for the summary's slowest
log=$(mktemp)
trap 'rm -f "$log"' EXIT

for t in "$@"; do
    echo "== $t"
    start=$(date +%s.%N)
    case $t in
    *.sh) bash "$t" 2>&1 | tee "$log" ;;
    *) "$t" 2>&1 | tee "$log" ;;
    esac
    rc=${PIPESTATUS[0]}
    times+=("$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }') $t")
    line=$(grep -E "$closing" "$log" | tail -n 1)
    if [ -z "$line" ]; then
        failed=$((failed + 1))
        problems+=("$t: no closing line (exit status $rc)")
        continue
    fi
    [[ $line =~ $closing ]]
    p=${BASH_REMATCH[1]} f=${BASH_REMATCH[2]} s=${BASH_REMATCH[3]}
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
    if [ "$f" -gt 0 ]; then
        problems+=("$t: $f failed")
    fi
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        failed=$((failed + 1))
        problems+=("$t: exit status $rc with no failed check (a crash or a sanitizer report?)")
    elif [ "$rc" -eq 0 ] && [ "$f" -gt 0 ]; then
        problems+=("$t: exit status 0 despite $f failed")
    fi
done

echo "== summary of $# tests; the slowest (seconds):"
printf '%s\n' "${times[@]}" | sort -rn | head -n 6 | awk '{ printf "  %7.1f %s\n", $1, $2 }'
for p in "${problems[@]+"${problems[@]}"}"; do echo "FAILED $p"; done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
