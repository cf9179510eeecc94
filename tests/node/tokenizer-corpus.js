// Writes the synthetic part of the tokenizer test corpus
// (tests/unit/tokenizer/corpus/gen_*) from a fixed seed, so the files are
// reproducible: numbers of every length, white-space runs, special tokens
// inside text, random Unicode, invalid UTF-8 bytes, very long words.
// Usage: node tests/node/tokenizer-corpus.js [OUTDIR]
"use strict";
const fs = require("fs");
const path = require("path");

const out = process.argv[2] || path.join(__dirname, "../unit/tokenizer/corpus");
let seed = 0x7011ca7e;
function rnd() { // xorshift32: small, seeded, the same on every machine
  seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0;
  return seed / 4294967296;
}
const pick = (a) => a[Math.floor(rnd() * a.length)];
const int = (n) => Math.floor(rnd() * n);
const write = (name, data) => fs.writeFileSync(path.join(out, name), data);

// Numbers of every length 1..80 in many notations and scripts.
{
  const lines = [];
  const digitSets = ["0123456789", "０１２３４５６７８９", "٠١٢٣٤٥٦٧٨٩", "०१२३४५६७८९", "೦೧೨೩೪೫೬೭೮೯", "𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗"];
  for (let len = 1; len <= 80; len++) {
    let d = ""; for (let i = 0; i < len; i++) d += String(i === 0 ? 1 + int(9) : int(10));
    lines.push(d, "x" + d + "y", " " + d, "$" + d + ".99", "-" + d + "e-" + len, d + "%", "v" + d.slice(0, 3) + "." + d);
    const ds = Array.from(pick(digitSets.slice(1)));
    lines.push(Array.from(d).map((c) => ds[+c]).join(""));
  }
  lines.push("1,234,567.89 1 234 567,89 1'234'567 1_000_000 0x1F 0b1010 0o777 1e10 3.14159265358979323846");
  lines.push("½ ¾ ⅓ ² ³ ¹ Ⅻ ⅻ ① ⑳ ㈠ ㊀ 〇 〡 〢 𐄇 ᛮ 2026-11-26T11:15:00Z 11:15:00.123 +1 (555) 010-9999");
  lines.push("１２３４５６７８９０１２３４５６７８９０ 十二万三千四百五十六 123456789012345678901234567890");
  write("gen_numbers.txt", lines.join("\n") + "\n");
}

// White space: runs of every kind and length, at starts, ends, before words.
{
  const ws = [" ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2003", "\u000b", "\u000c", "\u0085", "\u2028", "\u200b", "\ufeff", "\u1680", "\u202f"];
  const words = ["a", "word", "Hello", "你好", "123", "!!", "(x)", ".", "é", "\u0301", "😀", "-", "_", "'s"];
  const lines = [];
  for (let n = 1; n <= 40; n++) lines.push("x" + " ".repeat(n) + "y", " ".repeat(n) + "z", "w" + " ".repeat(n), "\t".repeat(n) + "t" + "\n".repeat(n % 4));
  for (let i = 0; i < 400; i++) {
    let s = "";
    const parts = 1 + int(8);
    for (let p = 0; p < parts; p++) {
      let run = ""; const rl = int(5);
      for (let k = 0; k < rl; k++) run += pick(ws);
      s += run + (rnd() < 0.8 ? pick(words) : "");
    }
    lines.push(s);
  }
  write("gen_whitespace.txt", lines.join("\u2029"));
}

// Special and added tokens inside text, whole and broken.
{
  const spec = ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<｜tool▁calls▁begin｜>", "<｜tool▁call▁begin｜>", "<｜tool▁sep｜>", "<｜tool▁call▁end｜>", "<｜tool▁calls▁end｜>", "<｜tool▁outputs▁begin｜>", "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>", "<｜tool▁outputs▁end｜>", "<｜▁pad▁｜>", "<think>", "</think>", "<｜fim▁hole｜>", "<｜fim▁begin｜>", "<｜fim▁end｜>", "<｜place▁holder▁no▁0｜>", "<｜place▁holder▁no▁797｜>"];
  const text = ["Hello", " world", "你好", "\n", " ", "123", "<", ">", "｜", "▁", "<｜", "｜>", "User", "<|User|>", "<｜User", "<｜User｜", "x<y>z"];
  const lines = [];
  for (const s of spec) lines.push(s, "a" + s + "b", " " + s + " ", s + s, s + "\n" + s, s.slice(0, -1), s.slice(1));
  for (let i = 0; i < 300; i++) {
    let s = ""; const n = 1 + int(10);
    for (let k = 0; k < n; k++) s += rnd() < 0.4 ? pick(spec) : pick(text);
    lines.push(s);
  }
  write("gen_special_tokens.txt", lines.join("\n") + "\n");
}

// Random Unicode: code points from every plane (no surrogates), in runs.
{
  const lines = [];
  for (let i = 0; i < 1500; i++) {
    let s = ""; const n = 1 + int(12);
    for (let k = 0; k < n; k++) {
      let cp;
      const r = rnd();
      if (r < 0.3) cp = 0x20 + int(0x60);
      else if (r < 0.6) cp = int(0x3000);
      else if (r < 0.8) cp = 0x3000 + int(0xd000 - 0x3000);
      else if (r < 0.9) cp = 0xe000 + int(0x2000);
      else cp = 0x10000 + int(0x100000);
      if (cp >= 0xd800 && cp < 0xe000) cp = 0x41;
      if (cp === 0x0a || cp === 0x0d) cp = 0x20;
      s += String.fromCodePoint(cp);
    }
    lines.push(s);
  }
  write("gen_random_unicode.txt", lines.join("\n") + "\n");
}

// Random mixes of pieces the pre-tokenizer treats differently.
{
  const pieces = ["the", " The", "I'm", "don't", " 's", "CamelCase", "snake_case", "kebab-case", "a.b.c", "https://x.y/z?q=1", "foo()", "{\"k\": [1, 2]}", "  ", "\t", "\n\n", "\r\n", " \n ", "...", "!?", " —", "«", "»", "你好", "カタカナ", "ひらがな", "漢字", "한국", "Ελλάδα", "мир", "é", "e\u0301", "\u0301", "\u0301\u0302", "😀", "👍🏽", "🇯🇵", "#", "@user", "$100", "42", "3.14", "١٢٣", "½", "²", "①", "\u00a0", "\u3000", "・", "ー", "゠", "〜", "｡", "ｱ", "℃", "™", "←", "∑", "\u200d", "\u0000", "\u0007", "\u001b[0m", "\u007f", "\u0085", "<｜User｜>", "<think>"];
  const lines = [];
  for (let i = 0; i < 3000; i++) {
    let s = ""; const n = 1 + int(12);
    for (let k = 0; k < n; k++) s += pick(pieces);
    lines.push(s);
  }
  write("gen_random_mix.txt", lines.join("\u2028") + "\n");
}

// Invalid UTF-8: stray bytes between valid text (read as U+FFFD).
{
  const bad = [[0x80], [0xbf], [0xc0, 0x80], [0xc1, 0xbf], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xf0, 0x80, 0x80, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf5], [0xff], [0xfe], [0xe4, 0xbd], [0xf0, 0x9f, 0x98], [0xc3], [0xe2, 0x82], [0xc3, 0x28], [0xa0, 0xa1], [0xe2, 0x28, 0xa1], [0xf0, 0x28, 0x8c, 0xbc]];
  const good = ["abc", " ", "你好", "\n", "😀", "123", "é", "<｜User｜>", "  x", ".."];
  const chunks = [];
  for (let i = 0; i < 800; i++) {
    const n = 1 + int(6);
    for (let k = 0; k < n; k++) chunks.push(rnd() < 0.5 ? Buffer.from(pick(bad)) : Buffer.from(pick(good), "utf8"));
    chunks.push(Buffer.from("\n"));
  }
  write("gen_invalid_utf8.bin", Buffer.concat(chunks));
}

// Very long words and runs: BPE over long pieces must stay exact and fast.
{
  const b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  let b64 = ""; for (let i = 0; i < 20000; i++) b64 += b64chars[int(64)];
  let hex = ""; for (let i = 0; i < 5000; i++) hex += "0123456789abcdef"[int(16)];
  let letters = ""; for (let i = 0; i < 8000; i++) letters += "abcdefghijklmnopqrstuvwxyz"[int(26)];
  const lines = [b64, hex, letters, "a".repeat(5000), " ".repeat(5000) + "end", "\n".repeat(3000), "=".repeat(4000),
    "ab".repeat(3000), "的".repeat(3000), "😀".repeat(1000), "\u0301".repeat(2000), "ааааааааааа".repeat(300)];
  write("gen_long_words.txt", lines.join("\n") + "\n");
}

// Normalization: combining marks in every order, Hangul jamo, singletons,
// composition exclusions (for tokenizers with an NFC normalizer).
{
  const bases = ["a", "e", "o", "u", "A", "E", "O", "U", "i", "n", "c", "s", "z", "α", "ω", "Α", "ι", "у", "ж", "あ", "か", "ウ", "ハ", "ב", "ש", "ก", "क", "ぁ", " ", "1", "."];
  const marks = ["\u0300", "\u0301", "\u0302", "\u0303", "\u0308", "\u030a", "\u030c", "\u0323", "\u0327", "\u0328", "\u031b", "\u0316", "\u0345", "\u0342", "\u0313", "\u0314", "\u05b7", "\u05bc", "\u05c1", "\u0e38", "\u0e48", "\u093c", "\u3099", "\u309a", "\u0f71", "\u0f72", "\u0f80", "\u1dce", "\u20d2", "\u034f"];
  const special = ["\u212b", "\u2126", "\u212a", "\u0340", "\u0341", "\u0343", "\u0344", "\u0374", "\u037e", "\u0387", "\u0958", "\u095f", "\ufb1d", "\ufb2a", "\u2adc", "\u{1d15e}", "\u{1d160}", "\uf900", "\uf9ff", "\u{2f800}", "\u0f73", "\u0f75", "\u0f81", "ﬁ", "①", "ｶ", "\u1e9b\u0323", "\u00c5", "\u00e9", "\u1ea5", "\u01d5"];
  const jamoL = 0x1100, jamoV = 0x1161, jamoT = 0x11a8;
  const lines = [];
  for (let i = 0; i < 1500; i++) {
    let s = "";
    const n = 1 + int(6);
    for (let k = 0; k < n; k++) {
      const r = rnd();
      if (r < 0.45) {
        s += pick(bases);
        const m = int(5);
        for (let j = 0; j < m; j++) s += pick(marks);
      } else if (r < 0.65) {
        s += String.fromCodePoint(jamoL + int(19), jamoV + int(21));
        if (rnd() < 0.5) s += String.fromCodePoint(jamoT + int(27));
        if (rnd() < 0.2) s += pick(marks);
      } else if (r < 0.75) {
        s += String.fromCodePoint(0xac00 + int(11172) - (rnd() < 0.5 ? 0 : 0)) + (rnd() < 0.5 ? String.fromCodePoint(jamoT + int(27)) : "");
      } else if (r < 0.9) {
        s += pick(special) + (rnd() < 0.4 ? pick(marks) : "");
      } else {
        s += pick([" ", "  ", "\n", "x", "word", "'s", "123"]);
      }
    }
    lines.push(s);
  }
  write("gen_normalization.txt", lines.join("\n") + "\n");
}
