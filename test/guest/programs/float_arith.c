// guest-levels: O0 O2 O3-power9
// guest-cflags: -frounding-math
/* IEEE 754 binary64 and binary32 arithmetic: +, -, *, /, sqrt and fused multiply-add over special
 * values (signed zeros, subnormals, infinities, NaNs, extremes), in all four rounding modes, with the
 * sticky exception flags each operation raises. Results print as bit patterns. */
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

static const double specials[] = {0.0,
                                  -0.0,
                                  1.0,
                                  -1.0,
                                  0.1,
                                  1.0 / 3,
                                  2.5,
                                  -2.5,
                                  0x1p53,
                                  0x1p53 + 2,
                                  DBL_MAX,
                                  -DBL_MAX,
                                  DBL_MIN,
                                  DBL_MIN / 4,
                                  DBL_TRUE_MIN,
                                  -DBL_TRUE_MIN,
                                  INFINITY,
                                  -INFINITY,
                                  NAN,
                                  3.141592653589793,
                                  1e308,
                                  1e-308,
                                  0x1.fffffffffffffp-1,
                                  0x1.0000000000001p0};
#define SPECIAL_COUNT (sizeof specials / sizeof specials[0])

static const int modes[] = {FE_TONEAREST, FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO};
static const char *const mode_names[] = {"nearest", "upward", "downward", "zero"};

static const char *flag_names(int flags) {
  static char text[64];
  snprintf(text, sizeof text, "%s%s%s%s%s", flags & FE_INVALID ? "I" : "-", flags & FE_DIVBYZERO ? "Z" : "-",
           flags & FE_OVERFLOW ? "O" : "-", flags & FE_UNDERFLOW ? "U" : "-", flags & FE_INEXACT ? "X" : "-");
  return text;
}

/* Every pair of specials under every operation, per rounding mode: a digest of results and flags. */
static void pairs(void) {
  for (int m = 0; m < 4; m++) {
    fesetround(modes[m]);
    uint64_t digest = FNV_INIT;
    int flags_seen = 0;
    for (size_t i = 0; i < SPECIAL_COUNT; i++) {
      for (size_t j = 0; j < SPECIAL_COUNT; j++) {
        const double a = OPAQUE(specials[i]), b = OPAQUE(specials[j]);
        feclearexcept(FE_ALL_EXCEPT);
        volatile double results[4] = {a + b, a - b, a * b, a / b};
        const int flags = fetestexcept(FE_ALL_EXCEPT);
        flags_seen |= flags;
        for (int k = 0; k < 4; k++) digest = fnv1a_u64(digest, bits(results[k]));
        digest = fnv1a_u64(digest, (uint64_t)flags);
        const float fa = (float)a, fb = (float)b;
        volatile float fresults[4] = {fa + fb, fa - fb, fa * fb, fa / fb};
        for (int k = 0; k < 4; k++) digest = fnv1a_u64(digest, fbits(fresults[k]));
        volatile double fused = fma(a, b, OPAQUE(specials[(i + j) % SPECIAL_COUNT]));
        digest = fnv1a_u64(digest, bits(fused));
      }
    }
    printf("pairs %-8s flags %s fnv=%016" PRIx64 "\n", mode_names[m], flag_names(flags_seen), digest);
  }
  fesetround(FE_TONEAREST);
}

/* Single operations whose results and flags are known exactly. */
static void known_results(void) {
  struct {
    const char *name;
    double result;
    uint64_t expected_bits;
    int expected_flags;
  } cases[12];
  int n = 0;
#define CASE(label, expression, want, want_flags)      \
  do {                                                 \
    feclearexcept(FE_ALL_EXCEPT);                      \
    volatile double result_ = (expression);            \
    cases[n].name = label;                             \
    cases[n].result = result_;                         \
    cases[n].expected_flags = (want_flags);            \
    cases[n].expected_bits = (want);                   \
    CHECK_EQ(fetestexcept(FE_ALL_EXCEPT), want_flags); \
    CHECK_EQ(bits(result_), want);                     \
    n++;                                               \
  } while (0)
  CASE("0.1 + 0.2", OPAQUE(0.1) + OPAQUE(0.2), 0x3fd3333333333334ULL, FE_INEXACT);
  CASE("1 / 0", OPAQUE(1.0) / OPAQUE(0.0), 0x7ff0000000000000ULL, FE_DIVBYZERO);
  CASE("-1 / 0", OPAQUE(-1.0) / OPAQUE(0.0), 0xfff0000000000000ULL, FE_DIVBYZERO);
  CASE("1 / -0", OPAQUE(1.0) / OPAQUE(-0.0), 0xfff0000000000000ULL, FE_DIVBYZERO);
  CASE("0 / 0", OPAQUE(0.0) / OPAQUE(0.0), 0x7ff8000000000000ULL, FE_INVALID);
  CASE("inf - inf", OPAQUE(INFINITY) - OPAQUE(INFINITY), 0x7ff8000000000000ULL, FE_INVALID);
  CASE("max * 2", OPAQUE(DBL_MAX) * OPAQUE(2.0), 0x7ff0000000000000ULL, FE_OVERFLOW | FE_INEXACT);
  CASE("min / 3", OPAQUE(DBL_MIN) / OPAQUE(3.0), 0x0005555555555555ULL, FE_UNDERFLOW | FE_INEXACT);
  CASE("min / 2", OPAQUE(DBL_MIN) / OPAQUE(2.0), 0x0008000000000000ULL, 0);
  CASE("sqrt(2)", sqrt(OPAQUE(2.0)), 0x3ff6a09e667f3bcdULL, FE_INEXACT);
  CASE("sqrt(-1)", sqrt(OPAQUE(-1.0)), 0x7ff8000000000000ULL, FE_INVALID);
  CASE("fma(0.1, 10, -1)", fma(OPAQUE(0.1), OPAQUE(10.0), OPAQUE(-1.0)), 0x3c90000000000000ULL, 0);
#undef CASE
  for (int i = 0; i < n; i++) {
    printf("%-18s = %-24a bits %016" PRIx64 " flags %s\n", cases[i].name, cases[i].result, bits(cases[i].result),
           flag_names(cases[i].expected_flags));
  }
}

static void rounding_modes(void) {
  static const uint64_t third[4] = {0x3fd5555555555555ULL, 0x3fd5555555555556ULL, 0x3fd5555555555555ULL,
                                    0x3fd5555555555555ULL};
  static const uint64_t minus_third[4] = {0xbfd5555555555555ULL, 0xbfd5555555555555ULL, 0xbfd5555555555556ULL,
                                          0xbfd5555555555555ULL};
  static const double rint_expect[4][4] = {{2, -2, 4, -4}, {3, -2, 4, -3}, {2, -3, 3, -4}, {2, -2, 3, -3}};
  for (int m = 0; m < 4; m++) {
    CHECK_EQ(fesetround(modes[m]), 0);
    CHECK_EQ(fegetround(), modes[m]);
    const double one = OPAQUE(1.0), minus_one = OPAQUE(-1.0), three = OPAQUE(3.0);
    volatile double q = one / three, nq = minus_one / three;
    volatile double zero_sum = OPAQUE(-0.0) + OPAQUE(0.0);
    volatile double cancel = OPAQUE(1.5) - OPAQUE(1.5);
    volatile float narrowed = (float)OPAQUE(0.1);
    volatile double root = sqrt(OPAQUE(3.0));
    volatile double huge = OPAQUE(DBL_MAX) + OPAQUE(0x1p970);
    const double r[4] = {rint(OPAQUE(2.5)), rint(OPAQUE(-2.5)), rint(OPAQUE(3.5)), rint(OPAQUE(-3.5))};
    printf("%-8s 1/3 %016" PRIx64 " -1/3 %016" PRIx64 " -0+0 %016" PRIx64 " 1.5-1.5 %016" PRIx64
           " (float)0.1 %08" PRIx32 " sqrt3 %016" PRIx64 " max+ %016" PRIx64 " rint %g %g %g %g\n",
           mode_names[m], bits(q), bits(nq), bits(zero_sum), bits(cancel), fbits(narrowed), bits(root), bits(huge),
           r[0], r[1], r[2], r[3]);
    CHECK_EQ(bits(q), third[m]);
    CHECK_EQ(bits(nq), minus_third[m]);
    /* The sum of opposite zeros and an exact cancellation are -0 only when rounding downward. */
    CHECK_EQ(bits(zero_sum), modes[m] == FE_DOWNWARD ? 0x8000000000000000ULL : 0);
    CHECK_EQ(bits(cancel), modes[m] == FE_DOWNWARD ? 0x8000000000000000ULL : 0);
    CHECK_EQ(fbits(narrowed), modes[m] == FE_UPWARD ? 0x3dcccccdu : 0x3dcccccc + (modes[m] == FE_TONEAREST));
    CHECK_EQ(bits(huge), modes[m] == FE_UPWARD || modes[m] == FE_TONEAREST ? 0x7ff0000000000000ULL : bits(DBL_MAX));
    for (int k = 0; k < 4; k++) CHECK(r[k] == rint_expect[m][k]);
  }
  fesetround(FE_TONEAREST);
}

static void specials_behaviour(void) {
  const double nan = OPAQUE(NAN), inf = OPAQUE(INFINITY), zero = OPAQUE(0.0), negative_zero = OPAQUE(-0.0);
  CHECK(nan != nan);
  CHECK(!(nan == nan));
  CHECK(!(nan < 1.0) && !(nan > 1.0) && !(nan <= 1.0) && !(nan >= 1.0));
  CHECK(isunordered(nan, 1.0));
  CHECK(!isless(nan, 1.0) && !isgreater(nan, 1.0));
  CHECK(zero == negative_zero);
  CHECK(signbit(negative_zero) && !signbit(zero));
  CHECK(signbit(OPAQUE(-1.0) * zero));
  CHECK_EQ(bits(copysign(OPAQUE(3.0), negative_zero)), bits(-3.0));
  CHECK(isinf(inf) && isinf(-inf) && !isinf(nan));
  CHECK(fpclassify(OPAQUE(DBL_TRUE_MIN)) == FP_SUBNORMAL);
  CHECK(fpclassify(OPAQUE(DBL_MIN)) == FP_NORMAL);
  CHECK(fpclassify(negative_zero) == FP_ZERO);
  CHECK(fpclassify(nan) == FP_NAN);
  CHECK(ldexp(OPAQUE(DBL_TRUE_MIN), 1074) == 1.0);
  CHECK(OPAQUE(DBL_TRUE_MIN) / 2 == 0.0);
  CHECK(OPAQUE(0x1p53) + 1.0 == 0x1p53);
  CHECK(OPAQUE(0x1p53) + 3.0 == 0x1p53 + 4.0);
  CHECK(OPAQUE(FLT_MAX) * 2.0f == INFINITY);
  CHECK(OPAQUE(1.0f) / 3.0f == 0x1.555556p-2f);
  CHECK(fmin(nan, 1.0) == 1.0 && fmax(1.0, nan) == 1.0);
  CHECK(fabs(negative_zero) == 0.0 && !signbit(fabs(negative_zero)));
  volatile double payload = -OPAQUE(NAN);
  volatile double quiet_sum = payload + 1.0;
  printf("nan %016" PRIx64 " -nan %016" PRIx64 " -nan+1 %016" PRIx64 " sNaN*1 %016" PRIx64 "\n", bits(nan),
         bits(payload), bits(quiet_sum), bits(OPAQUE(__builtin_nans("")) * OPAQUE(1.0)));
}

int main(void) {
  pairs();
  known_results();
  rounding_modes();
  specials_behaviour();
  return finish();
}
