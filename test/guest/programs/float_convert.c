// guest-levels: O0 O2 O3-power9
// guest-cflags: -frounding-math
/* Conversions between integers of every width and float/double (fcfid/fcfidu/fctiwz/fctidz/fctiduz
 * and their VSX forms): rounding of integers too wide for the mantissa, values at and beyond 2^63,
 * negative values to narrow types, float <-> double, lrint/llrint in every rounding mode, lround,
 * and floor/ceil/trunc/round on halfway cases. */
#define _GNU_SOURCE
#include "check.h"
#include <fenv.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>

static uint64_t bits(double d) {
  uint64_t u;
  memcpy(&u, &d, sizeof u);
  return u;
}

static uint32_t fbits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

static void integers_to_floating(void) {
  static const uint64_t values[] = {0,
                                    1,
                                    0x7f,
                                    0x80,
                                    0xff,
                                    0x7fff,
                                    0xffff,
                                    0x7fffffff,
                                    0x80000000,
                                    0xffffffff,
                                    0x1fffffffffffffULL, /* 2^53 - 1: exact in a double */
                                    0x20000000000001ULL, /* 2^53 + 1: a tie, rounds to even */
                                    0x20000000000003ULL,
                                    0x7fffffffffffffffULL,
                                    0x8000000000000000ULL,
                                    0x8000000000000401ULL,
                                    0xfffffffffffff7ffULL,
                                    0xfffffffffffffc00ULL,
                                    0xffffffffffffffffULL,
                                    0x0123456789abcdefULL};
  uint64_t digest = FNV_INIT;
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    const uint64_t u = OPAQUE(values[i]);
    const double from[8] = {(double)(int8_t)u,  (double)(uint8_t)u,  (double)(int16_t)u, (double)(uint16_t)u,
                            (double)(int32_t)u, (double)(uint32_t)u, (double)(int64_t)u, (double)u};
    const float ffrom[4] = {(float)(int32_t)u, (float)(uint32_t)u, (float)(int64_t)u, (float)u};
    printf("%016" PRIx64 ": i64 %a u64 %a f-i64 %a f-u64 %a\n", u, from[6], from[7], (double)ffrom[2],
           (double)ffrom[3]);
    for (int k = 0; k < 8; k++) digest = fnv1a_u64(digest, bits(from[k]));
    for (int k = 0; k < 4; k++) digest = fnv1a_u64(digest, fbits(ffrom[k]));
    CHECK(from[0] == (int8_t)u && from[2] == (int16_t)u && from[4] == (int32_t)u);
    CHECK(from[5] == (uint32_t)u);
  }
  CHECK_EQ(bits((double)OPAQUE(0x20000000000001ULL)), bits(0x1p53));
  CHECK_EQ(bits((double)OPAQUE(0x20000000000003ULL)), bits(0x1p53 + 4));
  CHECK_EQ(bits((double)OPAQUE(0xffffffffffffffffULL)), bits(0x1p64));
  CHECK_EQ(bits((double)OPAQUE((int64_t)INT64_MIN)), bits(-0x1p63));
  CHECK_EQ(fbits((float)OPAQUE(16777217)), fbits(16777216.0f));
  CHECK_EQ(fbits((float)OPAQUE(0xffffffffu)), fbits(0x1p32f));
  printf("int->fp fnv=%016" PRIx64 "\n", digest);
}

static void floating_to_integers(void) {
  static const double values[] = {0.0,           -0.0,         0.5,
                                  -0.5,          0.9999999,    -0.9999999,
                                  1.5,           -1.5,         127.9,
                                  -128.9,        255.5,        32767.99,
                                  -32768.5,      65535.7,      2147483647.9,
                                  -2147483648.9, 4294967295.5, 1e15 + 0.5,
                                  0x1p62,        -0x1p63,      0x1.fffffffffffffp62,
                                  0x1p63,        0x1.8p63,     0x1.fffffffffffffp63};
  uint64_t digest = FNV_INIT;
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    const double d = OPAQUE(values[i]);
    /* Only conversions whose value fits are defined in C; each is guarded by its range. */
    int64_t s64 = 0;
    uint64_t u64 = 0;
    int32_t s32 = 0;
    uint32_t u32 = 0;
    int16_t s16 = 0;
    uint8_t u8 = 0;
    if (d >= -0x1p63 && d < 0x1p63) s64 = (int64_t)d;
    if (d > -1.0 && d < 0x1p64) u64 = (uint64_t)d;
    if (d > -2147483649.0 && d < 2147483648.0) s32 = (int32_t)d;
    if (d > -1.0 && d < 4294967296.0) u32 = (uint32_t)d;
    if (d > -32769.0 && d < 32768.0) s16 = (int16_t)d;
    if (d > -1.0 && d < 256.0) u8 = (uint8_t)d;
    const float f = (float)d;
    int64_t from_float = 0;
    if (f >= -0x1p63f && f < 0x1p63f) from_float = (int64_t)f;
    printf("%-24a -> %" PRId64 " %" PRIu64 " %" PRId32 " %" PRIu32 " %d %u float %a -> %" PRId64 "\n", d, s64, u64, s32,
           u32, s16, u8, (double)f, from_float);
    digest = fnv1a_u64(digest, (uint64_t)s64 ^ u64 ^ (uint64_t)s32 << 7 ^ u32 ^ (uint64_t)s16 << 3 ^ u8);
    if (d >= -0x1p63 && d < 0x1p63) CHECK((double)s64 == trunc(d) || fabs(d) >= 0x1p53);
  }
  CHECK_EQ((uint64_t)OPAQUE(0x1.fffffffffffffp63), 0xfffffffffffff800ULL);
  CHECK_EQ((uint64_t)OPAQUE(0x1p63), 0x8000000000000000ULL);
  CHECK_EQ((int64_t)OPAQUE(-0x1p63), INT64_MIN);
  CHECK_EQ((int32_t)OPAQUE(-2147483648.9), (uint64_t)(int64_t)INT32_MIN);
  CHECK_EQ((uint32_t)OPAQUE(4294967295.5), 4294967295u);
  printf("fp->int fnv=%016" PRIx64 "\n", digest);
}

static void rounding(void) {
  static const int modes[] = {FE_TONEAREST, FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO};
  static const double halves[] = {
      0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999999999999994, 1e300, -3.7, 4503599627370497.0};
  for (int m = 0; m < 4; m++) {
    fesetround(modes[m]);
    printf("mode %d:", m);
    for (size_t i = 0; i < sizeof halves / sizeof halves[0]; i++) {
      const double d = OPAQUE(halves[i]);
      if (fabs(d) < 0x1p62) printf(" %ld/%lld", lrint(d), llrint(d));
      printf(" %g", nearbyint(d));
    }
    const double narrow = (double)(float)OPAQUE(1.0 + 0x1p-30);
    printf(" float(1+2^-30) %a\n", narrow);
    CHECK(narrow == (modes[m] == FE_UPWARD ? 1.0 + 0x1p-23 : 1.0));
  }
  fesetround(FE_TONEAREST);
  CHECK_EQ(lrint(OPAQUE(2.5)), 2);
  CHECK_EQ(lrint(OPAQUE(3.5)), 4);
  CHECK_EQ(lround(OPAQUE(2.5)), 3);
  CHECK_EQ(lround(OPAQUE(-2.5)), (uint64_t)-3LL);
  CHECK_EQ(llround(OPAQUE(0.49999999999999994)), 0);
  CHECK(round(OPAQUE(-0.5)) == -1.0);
  CHECK(signbit(round(OPAQUE(-0.4))));
  CHECK(trunc(OPAQUE(-2.7)) == -2.0);
  CHECK(floor(OPAQUE(-2.5)) == -3.0 && ceil(OPAQUE(-2.5)) == -2.0);
  CHECK(floor(OPAQUE(0x1p52 + 0.5)) == 0x1p52);
  CHECK(roundeven(OPAQUE(2.5)) == 2.0 && roundeven(OPAQUE(3.5)) == 4.0);
  CHECK(floorf(OPAQUE(-0.5f)) == -1.0f && ceilf(OPAQUE(-0.5f)) == -0.0f && signbit(ceilf(OPAQUE(-0.5f))));
}

static void widths(void) {
  static const double values[] = {0.1,          1.0 / 3, 1e-40,        1e-46,         3.4028235677973366e38,
                                  3.4028236e38, -0.0,    0x1.000001p0, 0x1.0000018p0, 0x1.0000008p0};
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    const double d = OPAQUE(values[i]);
    const float f = (float)d;
    const double back = f;
    printf("%-24a -> float %08" PRIx32 " -> %a\n", d, fbits(f), back);
  }
  CHECK_EQ(fbits((float)OPAQUE(0x1.0000018p0)), fbits(0x1.000002p0f)); /* tie: to even */
  CHECK_EQ(fbits((float)OPAQUE(0x1.0000008p0)), fbits(1.0f));          /* tie: to even */
  CHECK_EQ(fbits((float)OPAQUE(1e-46)), 0);
  CHECK_EQ(fbits((float)OPAQUE(3.4028236e38)), 0x7f800000u);
  CHECK(fpclassify((float)OPAQUE(1e-40)) == FP_SUBNORMAL);
}

int main(void) {
  integers_to_floating();
  floating_to_integers();
  rounding();
  widths();
  return finish();
}
