// guest-levels: O0 O2 O3-power9
/* Division edge cases: truncation toward zero for every sign combination and width, remainders
 * taking the dividend's sign, dividends at and above 2^63, division by every constant 1..64 (which
 * -O2 turns into multiply-high sequences) compared with division by the same run-time value,
 * signed division by powers of two, and div/ldiv/lldiv/imaxdiv. */
#include "check.h"
#include <inttypes.h>
#include <limits.h>

#define REP8(M, b) M(b + 1) M(b + 2) M(b + 3) M(b + 4) M(b + 5) M(b + 6) M(b + 7) M(b + 8)
#define REP64(M) REP8(M, 0) REP8(M, 8) REP8(M, 16) REP8(M, 24) REP8(M, 32) REP8(M, 40) REP8(M, 48) REP8(M, 56)

/* Constant divisors: each expands to code specialised for that divisor. */
#define BY_CONSTANT(d)                             \
  CHECK_EQ(u / (d), u / OPAQUE((uint64_t)(d)));    \
  CHECK_EQ(u % (d), u % OPAQUE((uint64_t)(d)));    \
  CHECK_EQ(s / (d), s / OPAQUE((int64_t)(d)));     \
  CHECK_EQ(s % (d), s % OPAQUE((int64_t)(d)));     \
  CHECK_EQ(w / (d), w / OPAQUE((uint32_t)(d)));    \
  CHECK_EQ(sw / (d), sw / OPAQUE((int32_t)(d)));   \
  CHECK_EQ(sw % -(d), sw % OPAQUE(-(int32_t)(d))); \
  digest = fnv1a_u64(fnv1a_u64(digest, u / (d) + u % (d)), (uint64_t)(s / (d)) ^ (uint64_t)(sw % (d)));

static void constant_divisors(void) {
  uint64_t digest = FNV_INIT;
  static const uint64_t edges[] = {0, 1, UINT64_MAX, 1ULL << 63};
  rng_seed(7);
  for (int n = 0; n < 400; n++) {
    const uint64_t u = OPAQUE(n < 4 ? edges[n] : rng_next() >> rng_below(64));
    const int64_t s = (int64_t)u;
    const uint32_t w = (uint32_t)(u >> 13);
    const int32_t sw = (int32_t)w;
    REP64(BY_CONSTANT)
    BY_CONSTANT(100)
    BY_CONSTANT(1000)
    BY_CONSTANT(641)
    BY_CONSTANT(1000000007)
  }
  printf("constant divisors fnv=%016" PRIx64 "\n", digest);
}

/* Run-time divisors over edge values of every width, with the C rules checked directly. */
#define DIVISION_SUITE(T, NAME, MINV, MAXV)                                                         \
  static void division_##NAME(void) {                                                               \
    const T values[] = {0,                                                                          \
                        1,                                                                          \
                        2,                                                                          \
                        3,                                                                          \
                        7,                                                                          \
                        10,                                                                         \
                        (T)-1,                                                                      \
                        (T)-2,                                                                      \
                        (T)-3,                                                                      \
                        (T)-7,                                                                      \
                        (T)-10,                                                                     \
                        MAXV,                                                                       \
                        (T)(MAXV - 1),                                                              \
                        MINV,                                                                       \
                        (T)(MINV + 1),                                                              \
                        (T)(MAXV / 2),                                                              \
                        (T)(MAXV / 2 + 1)};                                                         \
    const size_t count = sizeof values / sizeof values[0];                                          \
    uint64_t digest = FNV_INIT;                                                                     \
    for (size_t i = 0; i < count; i++) {                                                            \
      for (size_t j = 0; j < count; j++) {                                                          \
        const T a = OPAQUE(values[i]), b = OPAQUE(values[j]);                                       \
        if (b == 0 || ((T)-1 < 0 && sizeof(T) >= sizeof(int) && a == MINV && b == (T)-1)) continue; \
        const T q = (T)(a / b), r = (T)(a % b);                                                     \
        /* Truncation toward zero: |q| = floor(|a| / |b|), sign of q from the operands. */          \
        const __int128 wa = a, wb = b;                                                              \
        const __int128 magnitude = (wa < 0 ? -wa : wa) / (wb < 0 ? -wb : wb);                       \
        CHECK((__int128)(T)((wa < 0) != (wb < 0) ? -magnitude : magnitude) == q);                   \
        CHECK((__int128)(T)(wa - (__int128)q * wb) == r);                                           \
        digest = fnv1a_u64(fnv1a_u64(digest, (uint64_t)q), (uint64_t)r);                            \
      }                                                                                             \
    }                                                                                               \
    printf("%-6s fnv=%016" PRIx64 "\n", #NAME, digest);                                             \
  }

DIVISION_SUITE(int8_t, int8, INT8_MIN, INT8_MAX)
DIVISION_SUITE(uint8_t, uint8, 0, UINT8_MAX)
DIVISION_SUITE(int16_t, int16, INT16_MIN, INT16_MAX)
DIVISION_SUITE(uint16_t, uint16, 0, UINT16_MAX)
DIVISION_SUITE(int32_t, int32, INT32_MIN, INT32_MAX)
DIVISION_SUITE(uint32_t, uint32, 0, UINT32_MAX)
DIVISION_SUITE(int64_t, int64, INT64_MIN, INT64_MAX)
DIVISION_SUITE(uint64_t, uint64, 0, UINT64_MAX)

static void signs_and_library(void) {
  static const int pairs[][2] = {{7, 2},
                                 {-7, 2},
                                 {7, -2},
                                 {-7, -2},
                                 {0, 5},
                                 {0, -5},
                                 {1, 3},
                                 {-1, 3},
                                 {INT_MIN, 1},
                                 {INT_MIN, 2},
                                 {INT_MIN, INT_MIN},
                                 {INT_MAX, INT_MIN},
                                 {INT_MIN, INT_MAX},
                                 {INT_MAX, -1}};
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
    const int a = OPAQUE(pairs[i][0]), b = OPAQUE(pairs[i][1]);
    const div_t d = div(a, b);
    const ldiv_t ld = ldiv(a, b);
    const lldiv_t lld = lldiv((long long)a * 4294967296LL, b);
    const imaxdiv_t imd = imaxdiv(a, b);
    printf("%d / %d = %d rem %d; (%d << 32) / %d = %lld rem %lld\n", a, b, d.quot, d.rem, a, b, lld.quot, lld.rem);
    CHECK_EQ(d.quot, a / b);
    CHECK_EQ(d.rem, a % b);
    CHECK_EQ(ld.quot, (long)a / b);
    CHECK_EQ(imd.rem, a % b);
    CHECK_EQ(lld.quot * b + lld.rem, (long long)a * 4294967296LL);
  }
  /* Signed division by powers of two rounds toward zero, unlike an arithmetic shift. */
  for (int k = 0; k < 63; k++) {
    const int64_t d = (int64_t)1 << k;
    const int64_t x = OPAQUE(-(int64_t)0x123456789abcdefLL);
    CHECK_EQ(x / d, -(0x123456789abcdefLL / d));
    CHECK_EQ(x % d, -(0x123456789abcdefLL % d));
  }
  CHECK_EQ(OPAQUE(-9) / 4, (uint64_t)-2LL);
  CHECK_EQ(OPAQUE(-9) >> 2, (uint64_t)-3LL);
  CHECK_EQ(OPAQUE(-9) % 4, (uint64_t)-1LL);
  CHECK_EQ(OPAQUE(UINT64_MAX) / OPAQUE(UINT64_MAX), 1);
  CHECK_EQ(OPAQUE(UINT64_MAX - 1) / OPAQUE(UINT64_MAX), 0);
  CHECK_EQ(OPAQUE(UINT64_MAX) % OPAQUE(1ULL << 63), (1ULL << 63) - 1);
  CHECK_EQ(OPAQUE(0x8000000000000001ULL) / OPAQUE(0x8000000000000000ULL), 1);
  CHECK_EQ(OPAQUE(INT64_MIN) / OPAQUE(INT64_MAX), (uint64_t)-1LL);
  CHECK_EQ(OPAQUE(INT64_MIN) % OPAQUE(INT64_MAX), (uint64_t)-1LL);
  CHECK_EQ(OPAQUE(4294967295u) / OPAQUE(65536u), 65535);
  CHECK_EQ(OPAQUE(10000000000000000000ULL) / OPAQUE(3ULL), 3333333333333333333ULL);
}

int main(void) {
  constant_divisors();
  division_int8();
  division_uint8();
  division_int16();
  division_uint16();
  division_int32();
  division_uint32();
  division_int64();
  division_uint64();
  signs_and_library();
  return finish();
}
