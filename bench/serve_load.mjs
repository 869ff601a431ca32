// serve_load.mjs: load on a running `mtp serve` over loopback: for each concurrency C, C
// clients each send streamed greedy completions back to back for SECONDS; prints total
// generated tokens/s, time to first token (p50) and time per token after it (p50, p99).
//   node bench/serve_load.mjs URL [SECONDS=10] [MAX_TOKENS=64] [C1,C2,..=1,4,16]
// bench/serve_load.sh starts the servers (--spec none and auto) and runs this for each.
const [url, seconds = "10", maxTokens = "64", levels = "1,4,16"] = process.argv.slice(2);
const prompts = ["static int ", "for (int i = 0; ", "/* the ", "#include <", "int main(void) {\n    "];
const pct = (a, p) => (a.length ? a.sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(p * a.length))] : NaN);

async function one(prompt, ttft, perTok) {
  const t0 = performance.now();
  const r = await fetch(url + "/v1/completions", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ prompt, max_tokens: +maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true } }) });
  const reader = r.body.getReader(), dec = new TextDecoder();
  let first = 0, last = 0, tokens = 0, buf = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const line = buf.slice(0, i); buf = buf.slice(i + 2);
      if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
      const j = JSON.parse(line.slice(6));
      if (j.usage) tokens = j.usage.completion_tokens;
      else if (j.choices?.[0]?.text) { last = performance.now(); if (!first) first = last; }
    }
  }
  ttft.push(first - t0);
  if (tokens > 1) perTok.push((last - first) / (tokens - 1));
  return tokens;
}

for (const c of levels.split(",").map(Number)) {
  const ttft = [], perTok = [];
  let tokens = 0;
  const end = performance.now() + 1000 * +seconds, t0 = performance.now();
  await Promise.all([...Array(c).keys()].map(async (k) => {
    for (let n = 0; performance.now() < end; n++) {
      const t = await one(prompts[(k + n) % prompts.length], ttft, perTok); /* not `tokens += await`: that reads tokens first */
      tokens += t;
    }
  }));
  const s = (performance.now() - t0) / 1000;
  console.log(`clients ${String(c).padStart(2)}: ${(tokens / s).toFixed(0).padStart(6)} tok/s | ttft p50 ${pct(ttft, 0.5).toFixed(1)} ms | ` +
    `per token p50 ${pct(perTok, 0.5).toFixed(2)} ms p99 ${pct(perTok, 0.99).toFixed(2)} ms | ${ttft.length} requests`);
}
