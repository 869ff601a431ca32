#!/usr/bin/env bash
# tokenize.sh: encoding speed (MB/s) of `mtp tokenize --file` against python sentencepiece
# on the same text, in the same run: a Llama-2-style BPE model (byte fallback, identity
# normalizer) trained here with spm_train on the machine's own files, then a few MB of the
# Python standard library and licence texts encoded as one text by both. mtp's time is the
# whole command (start, load, encode, printing the ids); sentencepiece's is EncodeAsIds
# alone, so the ratio is if anything unfair to mtp. Both must give the same ids.
#   usage: bench/tokenize.sh [MB]   (default 4)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${MTP_BUILD:-build}
MB=${1:-4}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
find /usr/lib/python3.11 -name '*.py' -size -200k | sort | xargs cat /usr/share/common-licenses/* 2>/dev/null \
    | head -c $((MB * 1048576)) > "$tmp/text.txt" || true
head -c 3000000 "$tmp/text.txt" > "$tmp/train.txt"
spm_train --input="$tmp/train.txt" --model_prefix="$tmp/m" --model_type=bpe --vocab_size=8000 \
    --byte_fallback=true --split_digits=true --normalization_rule_name=identity \
    --remove_extra_whitespaces=false --allow_whitespace_only_pieces=true --num_threads=2 \
    --max_sentence_length=100000 --minloglevel=2 >/dev/null 2>&1
bytes=$(stat -c %s "$tmp/text.txt")
t0=$(date +%s.%N)
"$B/mtp" tokenize --tokenizer "$tmp/m.model" --file "$tmp/text.txt" --no-check > "$tmp/mtp.ids"
t1=$(date +%s.%N)
/usr/bin/python3 - "$tmp" "$bytes" "$t0" "$t1" <<'PY'
import sys, time
import sentencepiece as spm
tmp, n, t0, t1 = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
sp = spm.SentencePieceProcessor(model_file=f"{tmp}/m.model")
text = open(f"{tmp}/text.txt", "rb").read()
s = time.perf_counter()
ids = sp.EncodeAsIds(text)
e = time.perf_counter()
ours = list(map(int, open(f"{tmp}/mtp.ids").read().split()))
mb = n / 1e6
print(f"text: {mb:.1f} MB, {len(ids)} tokens; ids {'identical' if ours == ids else 'DIFFER'}")
print(f"mtp tokenize:  {mb / (t1 - t0):7.2f} MB/s ({t1 - t0:.2f} s, whole command)")
print(f"sentencepiece: {mb / (e - s):7.2f} MB/s ({e - s:.2f} s, EncodeAsIds only)")
print(f"ratio mtp / sentencepiece: {(e - s) / (t1 - t0):.2f}")
sys.exit(0 if ours == ids else 1)
PY
