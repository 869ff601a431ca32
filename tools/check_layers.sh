#!/usr/bin/env bash
# check_layers.sh: the library's dependencies point one way (make check-layers; CI runs it).
# Each src/<layer>/ file may include headers of the layers listed for it, and of its own;
# the public header includes nothing of src/; the model commands of the CLI include only
# the public header (and the CLI's own headers), as llama.cpp's tools use only llama.h.
# Prints every offending #include and exits 1 if there is one.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A allowed=(
    [core]=""
    [kernels]="core"
    [formats]="core"
    [text]="core"
    [model]="core kernels formats text"
    [train]="core kernels formats text model"
    [decode]="core kernels formats text model"
    [tasks]="core kernels formats text model train decode"
    [serve]="core kernels formats text model decode"
    [api]="core kernels formats text model train decode tasks"
)
# Commands that may use internal headers: benchmarks and the synthetic-task commands.
internal_ok="cli/cmd_bench.c cli/bench_shape.c cli/bench_shape.h cli/bench_rows.c cli/bench_rows.h cli/cmd_task.c cli/cmd_experiment.c cli/svg.c cli/svg.h"
cli_headers="args.h commands.h svg.h serve.h text_out.h"

bad=0
report() { echo "check-layers: $1: includes \"$2\" ($3)"; bad=1; }
includes() { sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$1"; }

for dir in src/*/; do
    layer=$(basename "$dir")
    [[ -v allowed[$layer] ]] || { echo "check-layers: $dir is no known layer (add it here)"; bad=1; continue; }
    for f in "$dir"*.[ch]; do
        for h in $(includes "$f"); do
            case "$h" in
            mtp.h) ;;
            */*) dep=${h%%/*}
                 if [[ $dep != "$layer" && " ${allowed[$layer]} " != *" $dep "* ]]; then
                     report "$f" "$h" "layer $layer may use: ${allowed[$layer]:-nothing}"
                 fi ;;
            *) report "$f" "$h" "name the layer: \"<layer>/$h\"" ;;
            esac
        done
    done
done
for h in $(includes include/mtp.h); do report include/mtp.h "$h" "the public header stands alone"; done
for f in cli/*.[ch]; do
    [[ " $internal_ok " == *" $f "* ]] && continue
    for h in $(includes "$f"); do
        [[ $h == mtp.h || " $cli_headers " == *" $h "* ]] && continue
        report "$f" "$h" "model commands use only the public header"
    done
done
[ $bad = 0 ] && echo "check-layers: ok"
exit $bad
