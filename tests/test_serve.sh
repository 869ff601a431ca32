#!/usr/bin/env bash
# test_serve.sh: mtp serve against the official openai npm client (tests/npm-serve): trains a
# small byte-level model here (on a generated C-like corpus, ~15 s on 2 cores), then runs
# tests/npm-serve/serve.test.mjs, which prints the closing line. Skipped, and says so, without node or the client.
set -u
B=${MTP_BUILD:-build}
cd "$(dirname "$0")/.."
if ! command -v node >/dev/null; then echo "SKIP: no node"; echo "0 passed, 0 failed, 1 skipped"; exit 0; fi
if [ ! -d tests/npm-serve/node_modules/openai ]; then
    npm ci --prefix tests/npm-serve --no-audit --no-fund >/dev/null 2>&1 ||
        { echo "SKIP: the openai client is not installed (tools/install_deps.sh)"; echo "0 passed, 0 failed, 1 skipped"; exit 0; }
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/cfg.json" <<'CFG'
{"dim": 64, "n_layers": 5, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 256, "multiple_of": 32,
 "n_future_tokens": 4, "max_seq_len": 2048}
CFG
# a small C-like corpus with much structure, so that 100 steps give varied greedy text
mkdir -p "$tmp/src"
/usr/bin/python3 - "$tmp/src/a.c" <<'PY'
import random, sys
r = random.Random(1)
names = ["count", "total", "size", "index", "value", "left", "right", "node"]
with open(sys.argv[1], "w") as f:
    for i in range(4000):
        a, b = r.choice(names), r.choice(names)
        f.write(r.choice(["static int %s_%d(int %s) { return %s * %d; }\n" % (a, i % 50, b, b, i % 9),
                          "for (int i = 0; i < %s; i++) %s += i;\n" % (a, b), "/* the %s of the %s */\n" % (a, b),
                          "#include <%s.h>\n" % a]))
PY
"$B/mtp" prepare --out "$tmp/data" "$tmp/src" >/dev/null 2>&1 &&
    "$B/mtp" train --config "$tmp/cfg.json" --data "$tmp/data/train.bin" --batch 8 --seq 64 --steps 100 \
        --warmup 5 --lr 1e-2 --quiet --threads 2 --out "$tmp/run" >/dev/null 2>&1 ||
    { echo "FAIL: could not train the test model"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }
MTP="$B/mtp" MODEL="$tmp/run/model.safetensors" exec node tests/npm-serve/serve.test.mjs
