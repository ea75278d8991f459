// guest-levels: O0 O2 O3-power9
/* Rotates and bit manipulation at every width: rotate idioms by every count (rlwnm/rldcl and their
 * immediate forms), byte swaps, popcount, leading/trailing zero counts, parity, ffs, bit reversal and
 * field extract/insert (rlwimi/rldimi), each against a bit-by-bit reference. */
#include "check.h"
#include <inttypes.h>
#include <strings.h>

static uint8_t rotl8(uint8_t x, unsigned n) { return (uint8_t)(x << (n & 7) | x >> (-n & 7)); }
static uint16_t rotl16(uint16_t x, unsigned n) { return (uint16_t)(x << (n & 15) | x >> (-n & 15)); }
static uint32_t rotl32(uint32_t x, unsigned n) { return x << (n & 31) | x >> (-n & 31); }
static uint32_t rotr32(uint32_t x, unsigned n) { return x >> (n & 31) | x << (-n & 31); }
static uint64_t rotl64(uint64_t x, unsigned n) { return x << (n & 63) | x >> (-n & 63); }
static uint64_t rotr64(uint64_t x, unsigned n) { return x >> (n & 63) | x << (-n & 63); }

static uint64_t reference_rotl(uint64_t x, unsigned n, int width) {
  uint64_t r = 0;
  for (int i = 0; i < width; i++) {
    if (x >> i & 1) r |= 1ULL << ((i + n) % width);
  }
  return r;
}

static int reference_popcount(uint64_t x) {
  int count = 0;
  for (int i = 0; i < 64; i++) count += x >> i & 1;
  return count;
}

static int reference_clz(uint64_t x, int width) {
  int n = 0;
  for (int i = width - 1; i >= 0 && !(x >> i & 1); i--) n++;
  return n;
}

static int reference_ctz(uint64_t x, int width) {
  int n = 0;
  for (int i = 0; i < width && !(x >> i & 1); i++) n++;
  return n;
}

static uint64_t reverse_bits64(uint64_t x) {
  x = (x >> 1 & 0x5555555555555555ULL) | (x & 0x5555555555555555ULL) << 1;
  x = (x >> 2 & 0x3333333333333333ULL) | (x & 0x3333333333333333ULL) << 2;
  x = (x >> 4 & 0x0f0f0f0f0f0f0f0fULL) | (x & 0x0f0f0f0f0f0f0f0fULL) << 4;
  return __builtin_bswap64(x);
}

/* Field insert and extract with constant positions: gcc turns these into rotate-and-mask forms. */
static uint32_t insert_bits_5_12(uint32_t target, uint32_t value) {
  return (target & ~(0xffu << 5)) | (value & 0xff) << 5;
}
static uint64_t insert_bits_40_20(uint64_t target, uint64_t value) {
  return (target & ~(0xfffffULL << 40)) | (value & 0xfffff) << 40;
}
static uint32_t extract_bits_7_9(uint32_t x) { return x >> 7 & 0x1ff; }
static uint64_t extract_bits_33_17(uint64_t x) { return x >> 33 & 0x1ffff; }

int main(void) {
  uint64_t digest = FNV_INIT;
  rng_seed(42);
  for (int sample = 0; sample < 300; sample++) {
    uint64_t x;
    switch (sample) {
      case 0: x = 0; break;
      case 1: x = ~0ULL; break;
      case 2: x = 1; break;
      case 3: x = 1ULL << 63; break;
      case 4: x = 0x80000000ULL; break;
      default: x = rng_next() >> rng_below(64); break;
    }
    x = OPAQUE(x);
    const uint32_t w = (uint32_t)x;
    const uint16_t h = (uint16_t)x;
    const uint8_t b = (uint8_t)x;
    for (unsigned n = 0; n < 64; n++) {
      const unsigned count = OPAQUE(n);
      CHECK_EQ(rotl64(x, count), reference_rotl(x, n, 64));
      CHECK_EQ(rotr64(rotl64(x, count), count), x);
      CHECK_EQ(rotl32(w, count), reference_rotl(w, n % 32, 32));
      CHECK_EQ(rotr32(rotl32(w, count), count), w);
      CHECK_EQ(rotl16(h, count), reference_rotl(h, n % 16, 16));
      CHECK_EQ(rotl8(b, count), reference_rotl(b, n % 8, 8));
      digest = fnv1a_u64(digest, rotl64(x, count) ^ rotl32(w, count));
    }
    /* Constant-count rotates. */
    digest = fnv1a_u64(digest, rotl64(x, 13) ^ rotr64(x, 7) ^ rotl32(w, 3) ^ rotr32(w, 29) ^ rotl16(h, 5));
    CHECK_EQ(rotl64(x, 13), reference_rotl(x, 13, 64));
    CHECK_EQ(rotr32(w, 29), reference_rotl(w, 3, 32));

    CHECK_EQ(__builtin_popcountll(x), reference_popcount(x));
    CHECK_EQ(__builtin_popcount(w), reference_popcount(w));
    CHECK_EQ(__builtin_parityll(x), reference_popcount(x) & 1);
    CHECK_EQ(__builtin_parity(w), reference_popcount(w) & 1);
    if (x) CHECK_EQ(__builtin_clzll(x), reference_clz(x, 64));
    if (x) CHECK_EQ(__builtin_ctzll(x), reference_ctz(x, 64));
    if (w) CHECK_EQ(__builtin_clz(w), reference_clz(w, 32));
    if (w) CHECK_EQ(__builtin_ctz(w), reference_ctz(w, 32));
    CHECK_EQ(ffsll((long long)x), x ? reference_ctz(x, 64) + 1 : 0);
    CHECK_EQ(ffs((int)w), w ? reference_ctz(w, 32) + 1 : 0);
    CHECK_EQ(__builtin_clrsbll((long long)x), reference_clz((int64_t)x < 0 ? ~x : x, 64) - 1);
    CHECK_EQ(__builtin_bswap64(__builtin_bswap64(x)), x);
    CHECK_EQ(__builtin_bswap32(w), (w & 0xff) << 24 | (w >> 8 & 0xff) << 16 | (w >> 16 & 0xff) << 8 | w >> 24);
    CHECK_EQ(__builtin_bswap16(h), (uint16_t)(h << 8 | h >> 8));
    CHECK_EQ(reverse_bits64(reverse_bits64(x)), x);
    CHECK_EQ(reverse_bits64(x) >> 63, x & 1);
    const uint64_t y = OPAQUE(rng_next());
    /* Bits 7..15 after the insert: y's bits 2..7, then w's untouched bits 13..15. */
    CHECK_EQ(extract_bits_7_9(insert_bits_5_12(w, (uint32_t)y)), (y & 0xff) >> 2 | (w >> 13 & 7) << 6);
    /* Bits 33..49 after the insert: x's untouched bits 33..39, then y's bits 0..9. */
    CHECK_EQ(extract_bits_33_17(insert_bits_40_20(x, y)), (x >> 33 & 0x7f) | (y & 0x3ff) << 7);
    /* Mask idioms: lowest set bit, clear lowest, isolate trailing zeros. */
    CHECK_EQ(x & -x, x ? 1ULL << reference_ctz(x, 64) : 0);
    CHECK_EQ(reference_popcount(x & (x - 1)), x ? reference_popcount(x) - 1 : 0);
    digest = fnv1a_u64(digest, __builtin_bswap64(x) ^ reverse_bits64(x));
    digest = fnv1a_u64(digest, (uint64_t)__builtin_popcountll(x) << 32 | (x ? __builtin_clzll(x) : 64) << 8 |
                                   (x ? __builtin_ctzll(x) : 64));
    digest = fnv1a_u64(digest, insert_bits_5_12(w, (uint32_t)y) ^ insert_bits_40_20(x, y));
    if (sample < 8) {
      printf("%016" PRIx64 ": bswap %016" PRIx64 " rev %016" PRIx64 " pop %d clz %d ctz %d rotl13 %016" PRIx64 "\n", x,
             __builtin_bswap64(x), reverse_bits64(x), __builtin_popcountll(x), x ? __builtin_clzll(x) : 64,
             x ? __builtin_ctzll(x) : 64, rotl64(x, 13));
    }
  }
  printf("bits fnv=%016" PRIx64 "\n", digest);
  return finish();
}
