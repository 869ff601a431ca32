#!/usr/bin/env bash
# run_fuzz.sh: runs each libFuzzer target BUILD/fuzz/fuzz_NAME for SECONDS, starting from
# its seeds in fuzz/corpus/NAME (new inputs it finds go to BUILD/fuzz/corpus/NAME, never
# into the tree), and ends with `N passed, M failed, 0 skipped`: a target passes when it
# ran its time without a crash, a leak or a sanitizer report.
#   usage: tools/run_fuzz.sh BUILD SECONDS NAME...
set -u
build=$1 secs=$2
shift 2
passed=0 failed=0
for name in "$@"; do
    bin=$build/fuzz/fuzz_$name
    work=$build/fuzz/corpus/$name
    mkdir -p "$work" "$build/fuzz/crashes"
    seeds=()
    [ -d "fuzz/corpus/$name" ] && seeds=("fuzz/corpus/$name")
    echo "== fuzz $name (${secs}s)"
    "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -artifact_prefix="$build/fuzz/crashes/$name-" \
        -print_final_stats=1 "$work" "${seeds[@]+"${seeds[@]}"}" >"$work.log" 2>&1
    rc=$?
    tail -n 8 "$work.log"
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAILED fuzz $name: exit status $rc (log $work.log, input kept in $build/fuzz/crashes/)"
    fi
done
echo "$passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
