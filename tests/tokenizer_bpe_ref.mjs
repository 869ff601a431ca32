// tokenizer_bpe_ref.mjs: the references tests/test_tokenizer_bpe.py compares mtp with.
//   node tests/tokenizer_bpe_ref.mjs TOKENIZER_JSON [--gpt3enc]
// stdin: one JSON value a line, a string or {"b64": BYTES} (bytes made text as Node's UTF-8
// decoder makes them: each invalid subpart one U+FFFD). stdout: one line each,
// {"ids": [...], "text": decode(ids, skip_special_tokens)} from @huggingface/tokenizers
// (tokenizers' JS port, reading tokenizer.json itself, encode with add_special_tokens
// false), or with --gpt3enc {"ids": [...]} from gpt-3-encoder (OpenAI's GPT-2 encoder).
// --bench FILE: encodes FILE line by line, prints {"mb_per_s": ...}.
import fs from "fs";
import readline from "readline";
import { createRequire } from "module";

const require = createRequire(import.meta.url);
const here = new URL("./npm/node_modules/", import.meta.url);
const { Tokenizer } = await import(new URL("@huggingface/tokenizers/dist/tokenizers.mjs", here));

const [path, mode, benchFile] = process.argv.slice(2);
let encode, decode;
if (mode === "--gpt3enc") {
  const enc = require(new URL("gpt-3-encoder/index.js", here).pathname);
  encode = (s) => enc.encode(s);
} else {
  const tok = new Tokenizer(JSON.parse(fs.readFileSync(path, "utf8")), {});
  encode = (s) => tok.encode(s, { add_special_tokens: false }).ids;
  decode = (ids) => tok.decode(ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false });
}

if (mode === "--bench") {
  const text = fs.readFileSync(benchFile, "utf8");
  const lines = text.split(/(?<=\n)/);
  let tokens = 0;
  const t0 = process.hrtime.bigint();
  for (const l of lines) tokens += encode(l).length;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const bytes = Buffer.byteLength(text, "utf8");
  console.log(JSON.stringify({ bytes, tokens, seconds: s, mb_per_s: bytes / 1e6 / s }));
} else {
  const out = [];
  for await (const line of readline.createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    const v = JSON.parse(line);
    const s = typeof v === "string" ? v : Buffer.from(v.b64, "base64").toString("utf8");
    const ids = encode(s);
    out.push(JSON.stringify(decode ? { ids, text: ids.length ? decode(ids) : "" } : { ids }));
  }
  process.stdout.write(out.join("\n") + (out.length ? "\n" : ""));
}
