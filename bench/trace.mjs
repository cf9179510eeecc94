// Deterministic synthetic text for the benchmarks' traces: a seeded
// generator (mulberry32) and helpers drawing from it, so that every rerun of
// a benchmark replays the same trace.
const VOCAB = ('time year people way day man thing woman life child world school state family student group ' +
  'country problem hand part place case week company system program question work government number night point ' +
  'home water room mother area money story fact month lot right study book eye job word business issue side kind').split(' ');

// Returns { rand, between, words } drawing from one seeded generator:
// rand() in [0, 1), between(a, b) an integer in [a, b], words(n) n words.
export function seededText(seed) {
  const rand = () => {
    seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const between = (a, b) => a + Math.floor(rand() * (b - a + 1));
  const words = (n) => { let s = ''; for (let i = 0; i < n; i++) s += VOCAB[Math.floor(rand() * VOCAB.length)] + ' '; return s; };
  return { rand, between, words };
}
