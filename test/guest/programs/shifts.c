// guest-levels: O0 O2 O3-power9
/* Shifts of every width by every count: left, logical right and arithmetic right, with the count
 * both a run-time value (slw/srw/sraw/sld/srd/srad) and a constant (rlwinm/rldicl/srawi/sradi), and
 * narrow types shifted after promotion. Checked against multiplication and division by powers of two. */
#include "check.h"
#include <inttypes.h>

#define REP8(M, b) M(b + 0) M(b + 1) M(b + 2) M(b + 3) M(b + 4) M(b + 5) M(b + 6) M(b + 7)
#define REP64(M) REP8(M, 0) REP8(M, 8) REP8(M, 16) REP8(M, 24) REP8(M, 32) REP8(M, 40) REP8(M, 48) REP8(M, 56)

static const uint64_t patterns[] = {0,
                                    1,
                                    0x8000000000000000ULL,
                                    0xffffffffffffffffULL,
                                    0x0123456789abcdefULL,
                                    0xfedcba9876543210ULL,
                                    0x00000000ffffffffULL,
                                    0xffffffff00000000ULL,
                                    0x0000000080000000ULL,
                                    0x5555555555555555ULL,
                                    0xaaaaaaaaaaaaaaaaULL,
                                    0x7fffffffffffffffULL,
                                    0x00000000000000ffULL,
                                    0x000000000000ff80ULL,
                                    0x0000000000008001ULL,
                                    0x00000000c0000001ULL};
#define PATTERN_COUNT (sizeof patterns / sizeof patterns[0])

/* x / 2^n rounded toward minus infinity, computed wide enough never to overflow. */
static __int128 floor_shift(__int128 x, int n) {
  const __int128 d = (__int128)1 << n;
  return x >= 0 ? x / d : -((-x + d - 1) / d);
}

/* Variable counts 0 .. width-1 for each width and signedness. */
#define VARIABLE_SUITE(T, UT, NAME)                                                                \
  static uint64_t variable_##NAME(void) {                                                          \
    const int width = sizeof(T) * 8;                                                               \
    uint64_t digest = FNV_INIT;                                                                    \
    for (size_t p = 0; p < PATTERN_COUNT; p++) {                                                   \
      const T x = (T)OPAQUE(patterns[p]);                                                          \
      for (int n = 0; n < width; n++) {                                                            \
        const int count = OPAQUE(n);                                                               \
        const T left = (T)((UT)x << count);                                                        \
        const T right = (T)(x >> count);                                                           \
        const UT logical = (UT)x >> count;                                                         \
        digest = fnv1a_u64(digest, (uint64_t)(UT)left);                                            \
        digest = fnv1a_u64(digest, (uint64_t)(UT)right);                                           \
        digest = fnv1a_u64(digest, (uint64_t)logical);                                             \
        CHECK((UT)left == (UT)((UT)x * (UT)((UT)1 << n)));                                         \
        CHECK(logical == (UT)x / (UT)((UT)1 << n));                                                \
        /* Arithmetic shift rounds toward minus infinity; gcc defines >> of negatives that way. */ \
        CHECK(right == (T)floor_shift(x, n));                                                      \
      }                                                                                            \
    }                                                                                              \
    printf("%-7s variable fnv=%016" PRIx64 "\n", #NAME, digest);                                   \
    return digest;                                                                                 \
  }

VARIABLE_SUITE(int8_t, uint8_t, int8)
VARIABLE_SUITE(uint8_t, uint8_t, uint8)
VARIABLE_SUITE(int16_t, uint16_t, int16)
VARIABLE_SUITE(uint16_t, uint16_t, uint16)
VARIABLE_SUITE(int32_t, uint32_t, int32)
VARIABLE_SUITE(uint32_t, uint32_t, uint32)
VARIABLE_SUITE(int64_t, uint64_t, int64)
VARIABLE_SUITE(uint64_t, uint64_t, uint64)

/* Constant counts: one instruction form per count, compared with the variable-count results. */
#define CONST64(n)                   \
  CHECK(x << (n) == x << OPAQUE(n)); \
  CHECK(x >> (n) == x >> OPAQUE(n)); \
  CHECK(s >> (n) == s >> OPAQUE(n)); \
  digest = fnv1a_u64(fnv1a_u64(fnv1a_u64(digest, x << (n)), x >> (n)), (uint64_t)(s >> (n)));
#define CONST32(n)                                                                            \
  if ((n) < 32) {                                                                             \
    CHECK(w << ((n)&31) == w << OPAQUE((n)&31));                                              \
    CHECK(w >> ((n)&31) == w >> OPAQUE((n)&31));                                              \
    CHECK(sw >> ((n)&31) == sw >> OPAQUE((n)&31));                                            \
    digest = fnv1a_u64(digest, (uint64_t)(w << ((n)&31)) << 32 | (uint32_t)(sw >> ((n)&31))); \
  }

static void constant_counts(void) {
  uint64_t digest = FNV_INIT;
  for (size_t p = 0; p < PATTERN_COUNT; p++) {
    const uint64_t x = OPAQUE(patterns[p]);
    const int64_t s = (int64_t)x;
    const uint32_t w = (uint32_t)x;
    const int32_t sw = (int32_t)w;
    REP64(CONST64)
    REP64(CONST32)
  }
  printf("constant counts fnv=%016" PRIx64 "\n", digest);
}

/* Shifts on promoted narrow types: the result is an int, wider than the operand. */
static void promotion(void) {
  const uint8_t b = OPAQUE((uint8_t)0x81);
  const int8_t sb = OPAQUE((int8_t)-127);
  const uint16_t h = OPAQUE((uint16_t)0x8001);
  CHECK_EQ(b << 4, 0x810);
  CHECK_EQ(b << 24 >> 24, (uint64_t)(int64_t)-127); /* int shift: the sign bit arrives at bit 31 */
  CHECK_EQ(sb >> 1, (uint64_t)(int64_t)-64);
  CHECK_EQ(sb << 8, (uint64_t)(int64_t)-32512);
  CHECK_EQ((uint32_t)h << 16, 0x80010000u);
  CHECK_EQ((uint64_t)h << 48, 0x8001000000000000ULL);
  CHECK_EQ((uint64_t)(uint32_t)(OPAQUE(0x80000000u) >> 31), 1);
  CHECK_EQ((uint64_t)(int64_t)(OPAQUE((int32_t)INT32_MIN) >> 31), (uint64_t)-1LL);
  CHECK_EQ(OPAQUE(1ULL) << 63, 0x8000000000000000ULL);
  CHECK_EQ((uint64_t)(OPAQUE(INT64_MIN) >> 63), (uint64_t)-1LL);
  /* A 32-bit shift whose count is taken modulo the width the way C code usually guards it. */
  for (int n = 0; n < 200; n++) {
    const unsigned count = OPAQUE((unsigned)n);
    CHECK_EQ(OPAQUE(0xdeadbeefu) << (count & 31), (uint32_t)(0xdeadbeefULL << (n % 32)));
    CHECK_EQ(OPAQUE(0xdeadbeefcafef00dULL) >> (count & 63), 0xdeadbeefcafef00dULL >> (n % 64));
  }
}

int main(void) {
  uint64_t all = FNV_INIT;
  all = fnv1a_u64(all, variable_int8());
  all = fnv1a_u64(all, variable_uint8());
  all = fnv1a_u64(all, variable_int16());
  all = fnv1a_u64(all, variable_uint16());
  all = fnv1a_u64(all, variable_int32());
  all = fnv1a_u64(all, variable_uint32());
  all = fnv1a_u64(all, variable_int64());
  all = fnv1a_u64(all, variable_uint64());
  printf("all variable fnv=%016" PRIx64 "\n", all);
  constant_counts();
  promotion();
  return finish();
}
