// serve.test.mjs: the official openai client against `mtp serve` on loopback
// (tests/test_serve.sh trains the byte-level model and runs this). Completions, streaming
// and chat; answers equal `mtp generate --json` for the same prompt and options (greedy,
// and seeded sampling), also when requests run concurrently; a client that leaves
// mid-stream frees its slot; malformed requests each get their error and leave the server
// serving; the API key; a full queue; SIGTERM exits 0. Ends with `N passed, M failed, K skipped`.
import { spawn, execFileSync } from "node:child_process";
import net from "node:net";
import OpenAI from "openai";

const MTP = process.env.MTP, MODEL = process.env.MODEL;
let passed = 0, failed = 0;
function check(ok, what) {
  if (ok) passed++;
  else { failed++; console.log("FAIL", what); }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const servers = [];
process.on("exit", () => servers.forEach((p) => p.code === undefined && p.kill("SIGKILL"))); // none left behind, even on a crash
function start(args) {
  return new Promise((resolve, reject) => {
    const p = spawn(MTP, ["serve", "--model", MODEL, "--port", "0", "--threads", "1", ...args], { stdio: ["ignore", "ignore", "pipe"] });
    servers.push(p);
    let err = "";
    p.stderr.on("data", (d) => {
      err += d;
      const m = err.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m && !p.url) { p.url = `http://127.0.0.1:${m[1]}`; p.port = +m[1]; resolve(p); }
    });
    p.on("exit", (code) => { p.code = code; if (!p.url) reject(new Error("serve exited: " + err)); });
  });
}
const stop = (p) => new Promise((r) => { if (p.code !== undefined) return r(p.code); p.on("exit", (c) => r(c)); p.kill("SIGTERM"); });

function generate(prompt, n, spec, extra = []) {
  const out = execFileSync(MTP, ["generate", "--model", MODEL, "--prompt", prompt, "-n", String(n), "--spec", spec,
    "--json", "--threads", "1", ...extra], { encoding: "utf8" });
  return JSON.parse(out.split("\n")[0]);
}
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const client = (p, key = "none") => new OpenAI({ baseURL: p.url + "/v1", apiKey: key, maxRetries: 0 });

async function raw(p, path, body, headers = {}) {
  let r, text;
  try {
    r = await fetch(p.url + path, { method: body === undefined ? "GET" : "POST", body, headers });
    text = await r.text();
  } catch (e) {
    return { status: 0, json: null, text: String(e.cause ?? e) };
  }
  let json = null;
  try { json = JSON.parse(text); } catch { /* metrics are text */ }
  return { status: r.status, json, text };
}
async function metric(p, name) {
  const m = (await raw(p, "/metrics")).text.match(new RegExp("^" + name + " ([0-9.]+)$", "m"));
  return m ? +m[1] : NaN;
}

const prompts = ["int main(void) {\n    ", "static void ", "#include <", "/* the ", "for (int i = 0; ", "return "];
const greedyOpts = { max_tokens: 40, temperature: 0 };
const sampledOpts = { max_tokens: 30, temperature: 0.8, top_k: 20, seed: 3 };
const sampledArgs = ["--temp", "0.8", "--top-k", "20", "--seed", "3"];

const auto = await start(["--parallel", "4", "--spec", "auto"]);
const block = await start(["--parallel", "3", "--spec", "block"]);
const oa = client(auto), ob = client(block);

// completions: greedy equals mtp generate (any spec: greedy output is the plain one)
const ref = prompts.map((p) => generate(p, 40, "none"));
const solo = [];
for (const [i, p] of prompts.entries()) {
  const r = await oa.completions.create({ model: "anything", prompt: p, ...greedyOpts });
  solo.push(r);
  check(same(r.mtp.tokens, ref[i].tokens) && r.choices[0].text === ref[i].text, `completion ${i}: tokens equal mtp generate`);
}
check(solo[0].usage.completion_tokens === 40 && solo[0].usage.prompt_tokens === prompts[0].length &&
  solo[0].choices[0].finish_reason === "length" && solo[0].object === "text_completion", "usage and finish_reason");
const rb = await ob.completions.create({ model: "x", prompt: prompts[1], ...greedyOpts });
check(same(rb.mtp.tokens, ref[1].tokens), "--spec block: greedy tokens equal plain mtp generate");

// seeded sampling: auto decodes sampled requests plainly, block speculates; each equals mtp generate so
const sNone = generate(prompts[2], 30, "none", sampledArgs), sBlock = generate(prompts[2], 30, "block", sampledArgs);
const ra = await oa.completions.create({ model: "x", prompt: prompts[2], ...sampledOpts });
check(same(ra.mtp.tokens, sNone.tokens), "sampled, --spec auto: equals mtp generate --spec none with the seed");
const rs = await ob.completions.create({ model: "x", prompt: prompts[2], ...sampledOpts });
check(same(rs.mtp.tokens, sBlock.tokens), "sampled, --spec block: equals mtp generate --spec block with the seed");

// token ids as the prompt, and stop strings
const ids = [...Buffer.from(prompts[1])];
const rid = await oa.completions.create({ model: "x", prompt: ids, ...greedyOpts });
check(same(rid.mtp.tokens, ref[1].tokens), "a prompt of token ids equals the same text");
const cut = ref[0].text.slice(5, 8);
if (cut.length === 3) {
  const gs = generate(prompts[0], 40, "none", ["--stop", cut]);
  const rstop = await oa.completions.create({ model: "x", prompt: prompts[0], ...greedyOpts, stop: [cut] });
  check(rstop.choices[0].text === gs.text && rstop.choices[0].finish_reason === "stop" && same(rstop.mtp.tokens, gs.tokens),
    "stop strings end the text as mtp generate --stop does");
}

// streaming: the chunks' text is the whole answer
let streamed = "", finish = null, chunks = 0;
for await (const c of await oa.completions.create({ model: "x", prompt: prompts[3], ...greedyOpts, stream: true })) {
  streamed += c.choices[0]?.text ?? "";
  finish = c.choices[0]?.finish_reason ?? finish;
  chunks++;
}
check(streamed === ref[3].text && finish === "length" && chunks >= 2, "a streamed completion equals the answer");

// chat, plain and streamed
const messages = [{ role: "system", content: "You write C." }, { role: "user", content: "A loop:" }];
const chat = await oa.chat.completions.create({ model: "x", messages, max_tokens: 20, temperature: 0 });
check(chat.object === "chat.completion" && chat.choices[0].message.role === "assistant" &&
  typeof chat.choices[0].message.content === "string", "chat completion");
const tmpl = "You write C.\n\nUser: A loop:\nAssistant:";
const gchat = generate(tmpl, 20, "none", ["--stop", "\nUser:"]);
check(chat.choices[0].message.content === gchat.text, "chat follows the documented template");
let chatText = "", role = null;
for await (const c of await oa.chat.completions.create({ model: "x", messages, max_tokens: 20, temperature: 0, stream: true,
  stream_options: { include_usage: true } })) {
  role = c.choices[0]?.delta?.role ?? role;
  chatText += c.choices[0]?.delta?.content ?? "";
}
check(chatText === chat.choices[0].message.content && role === "assistant", "streamed chat equals the chat answer");

// concurrent requests (more than the slots: some queue) equal their solo runs and mtp generate
const mix = prompts.map((p, i) => (i % 2 ? { prompt: p, ...sampledOpts, seed: 10 + i } : { prompt: p, ...greedyOpts }));
const conc = await Promise.all(mix.map((m) => oa.completions.create({ model: "x", ...m })));
const concStream = await Promise.all(mix.slice(0, 3).map(async (m) => {
  let t = "";
  for await (const c of await oa.completions.create({ model: "x", ...m, stream: true })) t += c.choices[0]?.text ?? "";
  return t;
}));
let okConc = 0;
for (const [i, m] of mix.entries()) {
  const g = i % 2 ? generate(m.prompt, 30, "none", ["--temp", "0.8", "--top-k", "20", "--seed", String(10 + i)]) : ref[i];
  okConc += same(conc[i].mtp.tokens, g.tokens) && (i >= 3 || concStream[i] === g.text);
}
check(okConc === mix.length, `concurrent requests equal mtp generate alone (${okConc} of ${mix.length})`);
const concB = await Promise.all(prompts.map((p) => ob.completions.create({ model: "x", prompt: p, ...greedyOpts })));
check(concB.every((r, i) => same(r.mtp.tokens, ref[i].tokens)), "concurrent, --spec block: equal their solo runs");

// a client that leaves mid-stream frees its slot (2,000 tokens: far longer than the abort takes to arrive)
const cancelledBefore = await metric(auto, 'mtp_requests_ended_total\\{end="cancelled"\\}');
const ac = new AbortController();
try {
  const s = await oa.completions.create({ model: "x", prompt: prompts[0], max_tokens: 2000, temperature: 0, stream: true },
    { signal: ac.signal });
  for await (const c of s) { if (c) ac.abort(); }
} catch { /* the abort */ }
let freed = false;
for (let k = 0; k < 50 && !freed; k++) {
  await sleep(100);
  freed = (await metric(auto, "mtp_active_requests")) === 0 &&
    (await metric(auto, 'mtp_requests_ended_total\\{end="cancelled"\\}')) === cancelledBefore + 1;
}
check(freed, "a disconnect mid-stream cancels the request and frees its slot");

// malformed requests: each gets OpenAI's error object, the server keeps serving
const bad = [
  ["{not json", 400, null], ['{"prompt": "a", "temperature": "hot"}', 400, "temperature"],
  ['{"prompt": "a", "max_tokens": -1}', 400, "max_tokens"], ['{"prompt": "a", "max_tokens": 1.5}', 400, "max_tokens"],
  ['{"prompt": 5}', 400, "prompt"], ['{"prompt": [1, 300]}', 400, "prompt"], ['{"prompt": "a", "stop": 7}', 400, "stop"],
  ['{"prompt": "a", "n": 2}', 400, "n"], ['{"prompt": "a", "stop": ["a", "b", "c", "d", "e"]}', 400, "stop"], ['{"prompt": "a", "top_p": 0}', 400, "top_p"], ['{"max_tokens": 3}', 400, "prompt"],
  ["[1,2]", 400, null], ["", 400, null], ['{"prompt": "' + "x".repeat(2100) + '", "max_tokens": 10}', 400, null],
  ["[".repeat(100000) + "]".repeat(100000), 400, null], ['{"prompt": "a", "stream": "yes"}', 400, "stream"],
];
let okBad = 0;
for (const [body, status, param] of bad) {
  const r = await raw(auto, "/v1/completions", body, { "Content-Type": "application/json" });
  const e = r.json?.error;
  const good = r.status === status && e && typeof e.message === "string" && "type" in e && "code" in e &&
    (param === null || e.param === param);
  if (!good) console.log("  bad request", body.slice(0, 40), "->", r.status, r.text.slice(0, 120));
  okBad += good;
}
check(okBad === bad.length, `malformed bodies get their 400 (${okBad} of ${bad.length})`);
const ctx = await raw(auto, "/v1/completions", JSON.stringify({ prompt: "x".repeat(2040), max_tokens: 20 }));
check(ctx.status === 400 && ctx.json?.error?.code === "context_length_exceeded", "past the context: 400 context_length_exceeded");
const big = await raw(auto, "/v1/completions", "x".repeat(2 << 20));
check(big.status === 413 && big.json?.error, "an oversized body: 413");
check((await raw(auto, "/nowhere")).status === 404 && (await raw(auto, "/v1/completions")).status === 405,
  "unknown route 404, wrong method 405");
// slow clients: half a request held open, and a body that never comes, while others are served
const slow = [net.connect(auto.port, "127.0.0.1"), net.connect(auto.port, "127.0.0.1")];
slow[0].write("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"prompt\"");
slow[1].write("GET /health HTTP/1.1\r\nHo");
await sleep(300);
const during = await oa.completions.create({ model: "x", prompt: prompts[1], ...greedyOpts });
check(same(during.mtp.tokens, ref[1].tokens), "slow clients do not stop the server");
slow.forEach((s) => s.destroy());
const after = await oa.completions.create({ model: "x", prompt: prompts[4], ...greedyOpts });
check(same(after.mtp.tokens, ref[4].tokens) && (await raw(auto, "/health")).json?.status === "ok", "still serving after the abuse");

// models, tokenize, detokenize
const models = await oa.models.list();
check(models.data.length === 1 && models.data[0].id === "model.safetensors", "/v1/models lists the model");
const tk = await raw(auto, "/tokenize", JSON.stringify({ content: "ab" }));
const dt = await raw(auto, "/detokenize", JSON.stringify({ tokens: [104, 105] }));
check(same(tk.json?.tokens, [97, 98]) && dt.json?.content === "hi", "/tokenize and /detokenize (bytes)");
// acceptance lines appear once a depth has drafted: --spec block always drafts, while auto may
// rightly choose plain passes on a machine (or sanitizer build) where they are cheaper
const mt = (await raw(auto, "/metrics")).text, mtb = (await raw(block, "/metrics")).text;
check(["mtp_requests_total", "mtp_generated_tokens_total", "mtp_tokens_per_pass", "mtp_queue_length",
  "mtp_batch_occupancy"].every((k) => mt.includes(k)) && mtb.includes("mtp_acceptance{depth=\"1\"}"), "/metrics has the counters");

// the API key, and a full queue
const keyed = await start(["--parallel", "1", "--queue", "0", "--api-key", "s3cret", "--spec", "none"]);
let status401 = 0;
try { await client(keyed, "wrong").completions.create({ model: "x", prompt: "a", max_tokens: 2 }); } catch (e) { status401 = e.status; }
const noKey = await raw(keyed, "/v1/models");
check(status401 === 401 && noKey.status === 401 && noKey.json?.error?.code === "invalid_api_key", "a wrong or missing key: 401");
const ok = await client(keyed, "s3cret").completions.create({ model: "x", prompt: prompts[1], ...greedyOpts });
check(same(ok.mtp.tokens, ref[1].tokens) && (await raw(keyed, "/health")).status === 200, "the right key is served");
const burst = await Promise.allSettled([0, 1, 2, 3].map(() =>
  client(keyed, "s3cret").completions.create({ model: "x", prompt: prompts[0], max_tokens: 150, temperature: 0 })));
check(burst.some((r) => r.status === "rejected" && r.reason.status === 503) && burst.some((r) => r.status === "fulfilled"),
  "a full queue answers 503, the rest are served");

// SIGTERM with a request in flight: exits 0
const inflight = client(keyed, "s3cret").completions.create({ model: "x", prompt: prompts[0], max_tokens: 150, temperature: 0 })
  .then(() => true, () => false);
for (let k = 0; k < 100 && !((await metric(keyed, "mtp_active_requests")) >= 1); k++) await sleep(20);
const codes = await Promise.all([stop(keyed), stop(auto), stop(block)]);
const finished = await inflight;
check(codes.every((c) => c === 0), `SIGTERM exits 0 (${codes})`);
check(finished, "the request in flight at SIGTERM is finished");

console.log(`${passed} passed, ${failed} failed, 0 skipped`);
process.exit(failed ? 1 : 0);
