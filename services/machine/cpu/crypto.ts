// The VMX crypto facility (Power ISA v3.0B Book I 6.11): AES rounds (vcipher, vcipherlast,
// vncipher, vncipherlast, vsbox) and the SHA-2 σ functions (vshasigmaw, vshasigmad). The AES
// state is the VR in ISA byte order, column-major as FIPS-197 lays it out.

import type { Cpu, Semantics } from "./interpreter.ts";

const vrt = (w: number) => 32 + ((w >>> 21) & 31);
const vra = (w: number) => 32 + ((w >>> 16) & 31);
const vrb = (w: number) => 32 + ((w >>> 11) & 31);

/** Multiplication in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1. */
function gfMultiply(a: number, b: number): number {
  let product = 0;
  for (let i = 0; i < 8; i++) {
    if (b & 1) product ^= a;
    const high = a & 0x80;
    a = (a << 1) & 0xff;
    if (high) a ^= 0x1b;
    b >>= 1;
  }
  return product;
}

/** The AES S-box and its inverse, computed from the field inverse and the affine map. */
const SBOX = new Uint8Array(256);
const INVERSE_SBOX = new Uint8Array(256);
for (let x = 0; x < 256; x++) {
  let inverse = 0;
  for (let y = 1; y < 256 && x !== 0; y++) {
    if (gfMultiply(x, y) === 1) {
      inverse = y;
      break;
    }
  }
  let s = inverse;
  for (let shift = 1; shift <= 4; shift++) s ^= ((inverse << shift) | (inverse >> (8 - shift))) & 0xff;
  s ^= 0x63;
  SBOX[x] = s;
  INVERSE_SBOX[s] = x;
}

const STATE = new Uint8Array(16);
const NEXT = new Uint8Array(16);

/** Loads VR v into STATE in ISA byte order. */
function loadState(cpu: Cpu, v: number, target: Uint8Array): void {
  for (let i = 0; i < 16; i++) target[i] = cpu.vsrBytes[16 * v + 15 - i];
}

function storeState(cpu: Cpu, v: number, source: Uint8Array): void {
  for (let i = 0; i < 16; i++) cpu.vsrBytes[16 * v + 15 - i] = source[i];
}

function subBytes(box: Uint8Array): void {
  for (let i = 0; i < 16; i++) STATE[i] = box[STATE[i]];
}

/** Row r rotates left by r columns (or right, for the inverse). */
function shiftRows(inverse: boolean): void {
  for (let c = 0; c < 4; c++) {
    for (let r = 0; r < 4; r++) {
      const from = inverse ? (c - r + 4) % 4 : (c + r) % 4;
      NEXT[r + 4 * c] = STATE[r + 4 * from];
    }
  }
  STATE.set(NEXT);
}

function mixColumns(inverse: boolean): void {
  const coefficients = inverse ? [14, 11, 13, 9] : [2, 3, 1, 1];
  for (let c = 0; c < 4; c++) {
    for (let r = 0; r < 4; r++) {
      let value = 0;
      for (let k = 0; k < 4; k++) value ^= gfMultiply(STATE[4 * c + ((r + k) % 4)], coefficients[k]);
      NEXT[4 * c + r] = value;
    }
  }
  STATE.set(NEXT);
}

function addRoundKey(cpu: Cpu, v: number): void {
  for (let i = 0; i < 16; i++) STATE[i] ^= cpu.vsrBytes[16 * v + 15 - i];
}

function cipher(last: boolean): Semantics {
  return (cpu, w) => {
    loadState(cpu, vra(w), STATE);
    subBytes(SBOX);
    shiftRows(false);
    if (!last) mixColumns(false);
    addRoundKey(cpu, vrb(w));
    storeState(cpu, vrt(w), STATE);
  };
}

/** vncipher applies InvMixColumns after the round key, as ISA 2.07B and later define it. */
function inverseCipher(last: boolean): Semantics {
  return (cpu, w) => {
    loadState(cpu, vra(w), STATE);
    shiftRows(true);
    subBytes(INVERSE_SBOX);
    addRoundKey(cpu, vrb(w));
    if (!last) mixColumns(true);
    storeState(cpu, vrt(w), STATE);
  };
}

const vsbox: Semantics = (cpu, w) => {
  loadState(cpu, vra(w), STATE);
  subBytes(SBOX);
  storeState(cpu, vrt(w), STATE);
};

const rotateRight32 = (x: number, n: number) => (x >>> n) | (x << (32 - n));

/** vshasigmaw: σ0/σ1 (ST = 0) or Σ0/Σ1 (ST = 1) of SHA-256 per word, SIX bit i choosing the second. */
const vshasigmaw: Semantics = (cpu, w) => {
  const st = (w >>> 15) & 1, six = (w >>> 11) & 15, a = vra(w), t = vrt(w);
  const words = cpu.vsrWords;
  const result = [0, 0, 0, 0];
  for (let i = 0; i < 4; i++) {
    const x = words[4 * a + 3 - i];
    const second = (six & (8 >>> i)) !== 0;
    if (st === 0) {
      result[i] = second
        ? rotateRight32(x, 17) ^ rotateRight32(x, 19) ^ (x >>> 10)
        : rotateRight32(x, 7) ^ rotateRight32(x, 18) ^ (x >>> 3);
    } else {
      result[i] = second
        ? rotateRight32(x, 6) ^ rotateRight32(x, 11) ^ rotateRight32(x, 25)
        : rotateRight32(x, 2) ^ rotateRight32(x, 13) ^ rotateRight32(x, 22);
    }
  }
  for (let i = 0; i < 4; i++) words[4 * t + 3 - i] = result[i];
};

const rotateRight64 = (x: bigint, n: bigint) => BigInt.asUintN(64, (x >> n) | (x << (64n - n)));

/** vshasigmad: the SHA-512 σ and Σ functions per doubleword, SIX bit 2i choosing the second. */
const vshasigmad: Semantics = (cpu, w) => {
  const st = (w >>> 15) & 1, six = (w >>> 11) & 15, a = vra(w), t = vrt(w);
  const words = cpu.vsrWords;
  const results: bigint[] = [];
  for (let i = 0; i < 2; i++) {
    const at = 4 * a + 2 - 2 * i;
    const x = (BigInt(words[at + 1] >>> 0) << 32n) | BigInt(words[at] >>> 0);
    const second = (six & (8 >>> (2 * i))) !== 0;
    if (st === 0) {
      results.push(
        second
          ? rotateRight64(x, 19n) ^ rotateRight64(x, 61n) ^ (x >> 6n)
          : rotateRight64(x, 1n) ^ rotateRight64(x, 8n) ^ (x >> 7n),
      );
    } else {
      results.push(
        second
          ? rotateRight64(x, 14n) ^ rotateRight64(x, 18n) ^ rotateRight64(x, 41n)
          : rotateRight64(x, 28n) ^ rotateRight64(x, 34n) ^ rotateRight64(x, 39n),
      );
    }
  }
  for (let i = 0; i < 2; i++) {
    const at = 4 * t + 2 - 2 * i;
    words[at] = Number(results[i] & 0xffffffffn) | 0;
    words[at + 1] = Number(results[i] >> 32n) | 0;
  }
};

/** The crypto instructions, by semantics name. */
export const CRYPTO_SEMANTICS: Record<string, Semantics> = {
  vcipher: cipher(false),
  vcipherlast: cipher(true),
  vncipher: inverseCipher(false),
  vncipherlast: inverseCipher(true),
  vsbox,
  vshasigmaw,
  vshasigmad,
};
