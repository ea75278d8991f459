/* Overflow detection and width conversions: __builtin_{add,sub,mul}_overflow at every width (mixed
 * signedness included), saturating arithmetic, multi-word addition with carry, abs/labs/llabs, and
 * sign extension and truncation between the widths. */
#include "check.h"
#include <inttypes.h>
#include <limits.h>

static const int64_t values[] = {0,
                                 1,
                                 -1,
                                 2,
                                 -2,
                                 127,
                                 -128,
                                 255,
                                 32767,
                                 -32768,
                                 65535,
                                 INT32_MAX,
                                 INT32_MIN,
                                 UINT32_MAX,
                                 INT64_MAX,
                                 INT64_MIN,
                                 0x123456789LL,
                                 -0x76543210FEDCBLL,
                                 3037000499LL,
                                 3037000500LL,
                                 -3037000500LL,
                                 (int64_t)0xAAAAAAAAAAAAAAAAULL};
#define VALUE_COUNT (sizeof values / sizeof values[0])

#define OVERFLOW_SUITE(T, NAME)                                                           \
  static void overflow_##NAME(void) {                                                     \
    uint64_t digest = FNV_INIT;                                                           \
    unsigned overflows = 0;                                                               \
    for (size_t i = 0; i < VALUE_COUNT; i++) {                                            \
      for (size_t j = 0; j < VALUE_COUNT; j++) {                                          \
        const T a = (T)OPAQUE(values[i]), b = (T)OPAQUE(values[j]);                       \
        T sum, difference, product;                                                       \
        const int add_overflow = __builtin_add_overflow(a, b, &sum);                      \
        const int sub_overflow = __builtin_sub_overflow(a, b, &difference);               \
        const int mul_overflow = __builtin_mul_overflow(a, b, &product);                  \
        const __int128 exact_sum = (__int128)a + b, exact_difference = (__int128)a - b;   \
        CHECK(add_overflow == (exact_sum != (T)exact_sum));                               \
        CHECK(sub_overflow == (exact_difference != (T)exact_difference));                 \
        CHECK(sum == (T)exact_sum);                                                       \
        CHECK(difference == (T)exact_difference);                                         \
        if (!mul_overflow && a != 0) CHECK(product / a == b);                             \
        overflows += add_overflow + sub_overflow + mul_overflow;                          \
        digest = fnv1a_u64(digest, (uint64_t)sum);                                        \
        digest = fnv1a_u64(digest, (uint64_t)difference);                                 \
        digest = fnv1a_u64(digest, (uint64_t)product);                                    \
        digest = fnv1a_u64(digest, add_overflow | sub_overflow << 1 | mul_overflow << 2); \
      }                                                                                   \
    }                                                                                     \
    printf("%-8s overflows=%u fnv=%016" PRIx64 "\n", #NAME, overflows, digest);           \
  }

OVERFLOW_SUITE(int8_t, int8)
OVERFLOW_SUITE(uint8_t, uint8)
OVERFLOW_SUITE(int16_t, int16)
OVERFLOW_SUITE(uint16_t, uint16)
OVERFLOW_SUITE(int32_t, int32)
OVERFLOW_SUITE(uint32_t, uint32)
OVERFLOW_SUITE(int64_t, int64)
OVERFLOW_SUITE(uint64_t, uint64)

static int32_t saturating_add32(int32_t a, int32_t b) {
  int32_t r;
  if (__builtin_add_overflow(a, b, &r)) return a < 0 ? INT32_MIN : INT32_MAX;
  return r;
}

static uint16_t saturating_sub_u16(uint16_t a, uint16_t b) { return a > b ? a - b : 0; }

/* 256-bit numbers as four 64-bit limbs, least significant first. */
static void add256(uint64_t *r, const uint64_t *a, const uint64_t *b) {
  unsigned carry = 0;
  for (int i = 0; i < 4; i++) {
    uint64_t s;
    unsigned c1 = __builtin_add_overflow(a[i], b[i], &s);
    unsigned c2 = __builtin_add_overflow(s, (uint64_t)carry, &r[i]);
    carry = c1 | c2;
  }
}

static void sub256(uint64_t *r, const uint64_t *a, const uint64_t *b) {
  unsigned borrow = 0;
  for (int i = 0; i < 4; i++) {
    uint64_t d;
    unsigned b1 = __builtin_sub_overflow(a[i], b[i], &d);
    unsigned b2 = __builtin_sub_overflow(d, (uint64_t)borrow, &r[i]);
    borrow = b1 | b2;
  }
}

static void multiword(void) {
  const uint64_t ones[4] = {~0ULL, ~0ULL, ~0ULL, 0};
  const uint64_t one[4] = {1, 0, 0, 0};
  uint64_t r[4], back[4];
  add256(r, ones, one);
  CHECK_EQ(r[0], 0);
  CHECK_EQ(r[1], 0);
  CHECK_EQ(r[2], 0);
  CHECK_EQ(r[3], 1);
  sub256(back, r, one);
  CHECK(memcmp(back, ones, sizeof back) == 0);
  rng_seed(256);
  uint64_t digest = FNV_INIT;
  for (int n = 0; n < 1000; n++) {
    uint64_t a[4], b[4], s[4], d[4];
    for (int i = 0; i < 4; i++) {
      a[i] = rng_next();
      b[i] = rng_next();
    }
    add256(s, a, b);
    sub256(d, s, b);
    CHECK(memcmp(d, a, sizeof d) == 0);
    digest = fnv1a(digest, s, sizeof s);
  }
  printf("add256 fnv=%016" PRIx64 "\n", digest);
}

static void conversions(void) {
  uint64_t digest = FNV_INIT;
  for (size_t i = 0; i < VALUE_COUNT; i++) {
    const int64_t v = OPAQUE(values[i]);
    const uint64_t widened[] = {
        (uint64_t)(int64_t)(int8_t)v,           (uint64_t)(uint8_t)v,
        (uint64_t)(int64_t)(int16_t)v,          (uint64_t)(uint16_t)v,
        (uint64_t)(int64_t)(int32_t)v,          (uint64_t)(uint32_t)v,
        (uint64_t)(int64_t)(int32_t)(int8_t)v,  (uint64_t)(uint32_t)(int16_t)v,
        (uint64_t)(int64_t)(int16_t)(uint8_t)v,
    };
    printf("widen %20" PRId64 ":", v);
    for (size_t k = 0; k < sizeof widened / sizeof widened[0]; k++) {
      printf(" %" PRIx64, widened[k]);
      digest = fnv1a_u64(digest, widened[k]);
    }
    printf("\n");
    CHECK_EQ((uint8_t)v, (uint64_t)v & 0xff);
    CHECK_EQ((uint16_t)v, (uint64_t)v & 0xffff);
    CHECK_EQ((uint32_t)v, (uint64_t)v & 0xffffffff);
    CHECK_EQ((int64_t)(int8_t)v, (int64_t)((uint64_t)v << 56) >> 56);
    CHECK_EQ((int64_t)(int16_t)v, (int64_t)((uint64_t)v << 48) >> 48);
    CHECK_EQ((int64_t)(int32_t)v, (int64_t)((uint64_t)v << 32) >> 32);
  }
  printf("conversions fnv=%016" PRIx64 "\n", digest);
}

static void known(void) {
  int8_t s8;
  CHECK(__builtin_add_overflow(OPAQUE((int8_t)100), OPAQUE((int8_t)28), &s8));
  CHECK_EQ((uint8_t)s8, 0x80);
  CHECK(!__builtin_add_overflow(OPAQUE((int8_t)100), OPAQUE((int8_t)27), &s8));
  uint32_t u32;
  CHECK(__builtin_sub_overflow(OPAQUE(0u), OPAQUE(1u), &u32));
  CHECK_EQ(u32, 0xffffffffu);
  int64_t s64;
  CHECK(__builtin_mul_overflow(OPAQUE((int64_t)3037000500LL), OPAQUE((int64_t)3037000500LL), &s64));
  CHECK(!__builtin_mul_overflow(OPAQUE((int64_t)3037000499LL), OPAQUE((int64_t)3037000499LL), &s64));
  CHECK_EQ(s64, 9223372030926249001ULL);
  CHECK(__builtin_mul_overflow(OPAQUE(INT64_MIN), OPAQUE((int64_t)-1), &s64));
  /* Mixed signedness: the result type decides. */
  CHECK(__builtin_add_overflow(OPAQUE(-1), OPAQUE(0u), &u32));
  CHECK(!__builtin_add_overflow(OPAQUE(-1), OPAQUE(1u), &u32));
  CHECK_EQ(u32, 0);
  uint64_t u64;
  CHECK(!__builtin_mul_overflow(OPAQUE((uint64_t)UINT32_MAX), OPAQUE((uint64_t)UINT32_MAX + 2), &u64));
  CHECK_EQ(u64, 0xffffffffffffffffULL); /* (2^32 - 1)(2^32 + 1) */
  CHECK_EQ(saturating_add32(OPAQUE(INT32_MAX - 5), OPAQUE(10)), INT32_MAX);
  CHECK_EQ((uint32_t)saturating_add32(OPAQUE(INT32_MIN + 5), OPAQUE(-10)), (uint32_t)INT32_MIN);
  CHECK_EQ(saturating_add32(OPAQUE(1000), OPAQUE(-10)), 990);
  CHECK_EQ(saturating_sub_u16(OPAQUE((uint16_t)5), OPAQUE((uint16_t)9)), 0);
  CHECK_EQ(abs(OPAQUE(-INT32_MAX)), INT32_MAX);
  CHECK_EQ(labs(OPAQUE(-5L)), 5);
  CHECK_EQ(llabs(OPAQUE(-(1LL << 62))), 1ULL << 62);
  CHECK_EQ(imaxabs(OPAQUE((intmax_t)-77)), 77);
}

int main(void) {
  overflow_int8();
  overflow_uint8();
  overflow_int16();
  overflow_uint16();
  overflow_int32();
  overflow_uint32();
  overflow_int64();
  overflow_uint64();
  multiword();
  conversions();
  known();
  return finish();
}
