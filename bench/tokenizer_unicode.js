// Every Unicode code point (no surrogates) in a few contexts, one line each,
// encoded by HF tokenizers line by line; prints one id-list hash per line
// (the idsHash of tests/node/tokenizer-expected.js). For tokenizer_unicode.sh.
// Usage: node bench/tokenizer_unicode.js TOKENIZER_JSON > hashes.txt
"use strict";
const path = require("path");
const { Tokenizer } = require(path.join(__dirname, "../tests/node/node_modules/@anush008/tokenizers"));

function idsHash(ids) {
  let h = 0;
  for (const id of ids) h = (Math.imul(h, 31) + id) >>> 0;
  return (Math.imul(h, 31) + ids.length) >>> 0;
}

(async () => {
  const tok = Tokenizer.fromFile(process.argv[2]);
  const out = [];
  for (let cp = 0; cp < 0x110000; cp++) {
    if (cp >= 0xd800 && cp < 0xe000) continue;
    const c = String.fromCodePoint(cp);
    // Letter, digit, space and punctuation neighbours expose the class.
    const line = "a" + c + "b " + c + "1" + c + " " + c + c + "!" + c + "\n";
    const e = await tok.encode(line, null, { addSpecialTokens: false });
    out.push(cp.toString(16) + " " + idsHash(e.getIds()));
    if (out.length === 65536) { process.stdout.write(out.join("\n") + "\n"); out.length = 0; }
  }
  process.stdout.write(out.join("\n") + "\n");
})().catch((e) => { console.error(e); process.exit(1); });
