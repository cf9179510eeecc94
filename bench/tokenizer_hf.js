// HF tokenizers (the Rust library via npm @anush008/tokenizers) on the same
// corpus, one encode at a time, for bench/tokenizer.sh. Prints the same line
// format and checksum as tokenizer_bench.c.
// Usage: UV_THREADPOOL_SIZE=1 node bench/tokenizer_hf.js TOKENIZER_JSON CORPUS_DIR [SECONDS]
"use strict";
const fs = require("fs");
const path = require("path");
const { Tokenizer } = require(path.join(__dirname, "../tests/node/node_modules/@anush008/tokenizers"));

(async () => {
  const [tokPath, corpus, secsArg] = process.argv.slice(2);
  const secs = Number(secsArg || 2);
  let t0 = process.hrtime.bigint();
  const tok = Tokenizer.fromFile(tokPath);
  const load = Number(process.hrtime.bigint() - t0) / 1e9;
  const names = fs.readdirSync(corpus).filter((n) => !n.startsWith(".") && n !== "README.md").sort();
  const bufs = names.map((n) => fs.readFileSync(path.join(corpus, n)));
  const texts = bufs.map((b) => b.toString("utf8"));
  const bytes = bufs.reduce((a, b) => a + b.length, 0);
  const enc = async (s) => (await tok.encode(s, null, { addSpecialTokens: false })).getIds();
  let sum = 0, tokens = 0;
  for (const s of texts) {
    const ids = await enc(s);
    for (const id of ids) sum = (Math.imul(sum, 31) + id) >>> 0;
    tokens += ids.length;
  }
  let passes = 0, el;
  t0 = process.hrtime.bigint();
  do {
    for (const s of texts) await enc(s);
    passes++;
    el = Number(process.hrtime.bigint() - t0) / 1e9;
  } while (el < secs);
  for (let i = 0; i < names.length; i++) {
    const ft = (await enc(texts[i])).length;
    let reps = 0, fe;
    const f0 = process.hrtime.bigint();
    do {
      await enc(texts[i]);
      reps++;
      fe = Number(process.hrtime.bigint() - f0) / 1e9;
    } while (fe < 0.25);
    console.log(`file ${names[i]} bytes=${bufs[i].length} tokens=${ft} tokens_per_s=${(ft * reps / fe).toFixed(0)} mb_per_s=${(bufs[i].length * reps / fe / 1e6).toFixed(2)}`);
  }
  console.log(`hf files=${names.length} bytes=${bytes} tokens=${tokens} checksum=${sum.toString(16).padStart(8, "0")} passes=${passes} seconds=${el.toFixed(3)} tokens_per_s=${(tokens * passes / el).toFixed(0)} mb_per_s=${(bytes * passes / el / 1e6).toFixed(2)} load_s=${load.toFixed(3)}`);
})().catch((e) => { console.error(e); process.exit(1); });
