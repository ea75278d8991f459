// guest-levels: O0 O2 O3-power9
/* Integer arithmetic of every width (8, 16, 32 and 64 bits, signed and unsigned) over edge values:
 * add, sub, mul, div, rem, neg, not, and, or, xor, comparisons and min/max. Wraparound goes through
 * the unsigned type (signed overflow is undefined in C); narrow types are checked for promotion. */
#include "check.h"
#include <inttypes.h>
#include <limits.h>

#define EDGES 16
#define MAGNITUDE(x) ((x) < 0 ? -(__int128)(x) : (__int128)(x))
#define SAMPLES 16

/* One line per operation: 16 sampled results and a digest of all 256. */
static void report(const char *type, const char *op, const uint64_t *results, int bytes) {
  uint64_t digest = FNV_INIT;
  for (int i = 0; i < EDGES * EDGES; i++) digest = fnv1a_u64(digest, results[i]);
  printf("%s %s:", type, op);
  for (int s = 0; s < SAMPLES; s++) {
    int i = s, j = (s * 5 + 3) % EDGES;
    printf(" %0*" PRIx64, bytes * 2, results[i * EDGES + j]);
  }
  printf(" fnv=%016" PRIx64 "\n", digest);
}

/* Small values, both signs, the extremes and their neighbours, and alternating bit patterns. */
// clang-format off
#define EDGE_VALUES(T, UT, MINV, MAXV)                                                                 \
  {0, 1, 2, 3, 10, (T)-1, (T)-2, (T)-10, MINV, (T)(MINV + 1), MAXV, (T)(MAXV - 1), (T)(MAXV / 3),      \
   (T)((UT)~(UT)0 / 3), (T)((UT)~(UT)0 / 3 * 2), (T)((UT)~(UT)0 / 17)}
// clang-format on

/* T: the type; UT: its unsigned twin; WT: the unsigned type its products are computed in (at least
 * unsigned int, so that narrow products cannot overflow a promoted int). */
#define ARITH_SUITE(T, UT, WT, NAME, MINV, MAXV)                                                                     \
  static void suite_##NAME(void) {                                                                                   \
    const int is_signed = (T)-1 < 0;                                                                                 \
    const T edges[EDGES] = EDGE_VALUES(T, UT, MINV, MAXV);                                                           \
    static uint64_t add[EDGES * EDGES], sub[EDGES * EDGES], mul[EDGES * EDGES], quo[EDGES * EDGES];                  \
    static uint64_t rem[EDGES * EDGES], ands[EDGES * EDGES], ors[EDGES * EDGES], xors[EDGES * EDGES];                \
    static uint64_t cmp[EDGES * EDGES], min[EDGES * EDGES], max[EDGES * EDGES], narrow[EDGES * EDGES];               \
    for (int i = 0; i < EDGES; i++) {                                                                                \
      for (int j = 0; j < EDGES; j++) {                                                                              \
        const T a = OPAQUE(edges[i]), b = OPAQUE(edges[j]);                                                          \
        const int k = i * EDGES + j;                                                                                 \
        const T sum = (T)((UT)a + (UT)b), difference = (T)((UT)a - (UT)b);                                           \
        const T product = (T)((WT)(UT)a * (WT)(UT)b);                                                                \
        add[k] = (UT)sum;                                                                                            \
        sub[k] = (UT)difference;                                                                                     \
        mul[k] = (UT)product;                                                                                        \
        ands[k] = (UT)(a & b);                                                                                       \
        ors[k] = (UT)(a | b);                                                                                        \
        xors[k] = (UT)(a ^ b);                                                                                       \
        cmp[k] = (uint64_t)((a < b) | (a <= b) << 1 | (a == b) << 2 | (a != b) << 3 | (a > b) << 4 | (a >= b) << 5); \
        min[k] = (UT)(a < b ? a : b);                                                                                \
        max[k] = (UT)(a > b ? a : b);                                                                                \
        /* Narrow types promote to int: this sum and product never wrap before the cast. */                          \
        narrow[k] = (uint64_t)(int64_t)(sizeof(T) < sizeof(int) ? (int64_t)a * b + a - b : 0);                       \
        quo[k] = rem[k] = 0;                                                                                         \
        const int representable = sizeof(T) < sizeof(int) || !is_signed || a != MINV || b != (T)-1;                  \
        if (b != 0 && representable) {                                                                               \
          const T q = (T)(a / b), r = (T)(a % b);                                                                    \
          quo[k] = (UT)q;                                                                                            \
          rem[k] = (UT)r;                                                                                            \
          CHECK((T)((UT)((WT)(UT)q * (WT)(UT)b) + (UT)r) == a);                                                      \
          CHECK(r == 0 || (r < 0) == (a < 0));                                                                       \
          CHECK(MAGNITUDE(r) < MAGNITUDE(b));                                                                        \
        }                                                                                                            \
        CHECK((T)((UT)sum - (UT)b) == a);                                                                            \
        CHECK((T)((UT)difference + (UT)b) == a);                                                                     \
        CHECK(product == (T)((WT)(UT)b * (WT)(UT)a));                                                                \
        CHECK((T)(a ^ b ^ b) == a);                                                                                  \
        CHECK((T)((a & b) | (a & (T)~b)) == a);                                                                      \
        CHECK((a < b) + (a == b) + (a > b) == 1);                                                                    \
      }                                                                                                              \
      const T a = OPAQUE(edges[i]);                                                                                  \
      CHECK((T)((UT)a + (UT)(T)(0 - (UT)a)) == 0);                                                                   \
      CHECK((T)~a == (T)((UT)-1 - (UT)a));                                                                           \
      CHECK((T)((WT)(UT)a * 1u) == a);                                                                               \
    }                                                                                                                \
    CHECK((T)((UT)OPAQUE((T)MAXV) + 1u) == MINV);                                                                    \
    CHECK((T)((UT)OPAQUE((T)MINV) - 1u) == MAXV);                                                                    \
    CHECK((T)((WT)(UT)OPAQUE((T)MAXV) * (WT)(UT)MAXV) == 1);                                                         \
    report(#NAME, "add", add, sizeof(T));                                                                            \
    report(#NAME, "sub", sub, sizeof(T));                                                                            \
    report(#NAME, "mul", mul, sizeof(T));                                                                            \
    report(#NAME, "div", quo, sizeof(T));                                                                            \
    report(#NAME, "rem", rem, sizeof(T));                                                                            \
    report(#NAME, "and", ands, sizeof(T));                                                                           \
    report(#NAME, "or", ors, sizeof(T));                                                                             \
    report(#NAME, "xor", xors, sizeof(T));                                                                           \
    report(#NAME, "cmp", cmp, 1);                                                                                    \
    report(#NAME, "min", min, sizeof(T));                                                                            \
    report(#NAME, "max", max, sizeof(T));                                                                            \
    if (sizeof(T) < sizeof(int)) report(#NAME, "promoted", narrow, 8);                                               \
  }

ARITH_SUITE(int8_t, uint8_t, unsigned, int8, INT8_MIN, INT8_MAX)
ARITH_SUITE(uint8_t, uint8_t, unsigned, uint8, 0, UINT8_MAX)
ARITH_SUITE(int16_t, uint16_t, unsigned, int16, INT16_MIN, INT16_MAX)
ARITH_SUITE(uint16_t, uint16_t, unsigned, uint16, 0, UINT16_MAX)
ARITH_SUITE(int32_t, uint32_t, uint32_t, int32, INT32_MIN, INT32_MAX)
ARITH_SUITE(uint32_t, uint32_t, uint32_t, uint32, 0, UINT32_MAX)
ARITH_SUITE(int64_t, uint64_t, uint64_t, int64, INT64_MIN, INT64_MAX)
ARITH_SUITE(uint64_t, uint64_t, uint64_t, uint64, 0, UINT64_MAX)

/* Known values, so that a wrong but self-consistent operation is caught too. */
static void known_values(void) {
  CHECK_EQ((uint8_t)(OPAQUE((uint8_t)200) + OPAQUE((uint8_t)100)), 44);
  CHECK_EQ(OPAQUE((uint8_t)200) + OPAQUE((uint8_t)100), 300); /* promoted to int */
  CHECK_EQ((int8_t)(OPAQUE((int8_t)-128) / OPAQUE((int8_t)-1)), (uint64_t)(int64_t)-128);
  CHECK_EQ(OPAQUE((int8_t)-128) / OPAQUE((int8_t)-1), 128);
  CHECK_EQ((uint16_t)(OPAQUE((uint16_t)65535) * OPAQUE((uint16_t)65535)), 1);
  CHECK_EQ((int16_t)(OPAQUE((int16_t)-300) * OPAQUE((int16_t)300)), (uint64_t)(int64_t)(int16_t)-90000);
  CHECK_EQ(OPAQUE((uint32_t)0xffffffffu) * OPAQUE((uint32_t)0xffffffffu), 1);
  CHECK_EQ(OPAQUE((uint32_t)123456789u) * OPAQUE((uint32_t)987654321u), 0xfbff5385u);
  CHECK_EQ(OPAQUE(-7) / OPAQUE(2), (uint64_t)-3LL);
  CHECK_EQ(OPAQUE(-7) % OPAQUE(2), (uint64_t)-1LL);
  CHECK_EQ(OPAQUE(7) % OPAQUE(-2), 1);
  CHECK_EQ(OPAQUE(0xfffffffffffffffeULL) / OPAQUE(3ULL), 0x5555555555555554ULL);
  CHECK_EQ(OPAQUE(0x8000000000000000ULL) % OPAQUE(10ULL), 8);
  CHECK_EQ(OPAQUE(INT64_MIN) / OPAQUE(2LL), (uint64_t) - (1LL << 62));
  CHECK_EQ(OPAQUE(123456789012345ULL) * OPAQUE(1000003ULL), 0xb14ff05ac155aeabULL);
  CHECK_EQ(OPAQUE((int64_t)-1) * OPAQUE((int64_t)-1), 1);
  CHECK_EQ((uint64_t)OPAQUE((int32_t)-5), 0xfffffffffffffffbULL);
  CHECK_EQ((uint32_t)OPAQUE((int8_t)-5), 0xfffffffbu);
  CHECK_EQ((uint64_t)OPAQUE((uint32_t)0x80000000u), 0x80000000ULL);
  CHECK(OPAQUE((int8_t)-1) < OPAQUE((uint8_t)1)); /* both promote to int */
  CHECK(OPAQUE(-1) > OPAQUE(1u));                 /* int converts to unsigned */
  CHECK(OPAQUE(-1L) < OPAQUE(1u));                /* unsigned int converts to long */
}

int main(void) {
  suite_int8();
  suite_uint8();
  suite_int16();
  suite_uint16();
  suite_int32();
  suite_uint32();
  suite_int64();
  suite_uint64();
  known_values();
  return finish();
}
