// guest-levels: O0 O2 O3-power9
/* libm across special values: every one-argument function of a list over zeros, subnormals,
 * infinities, NaN, values near the edges of each function's domain and ordinary values; the
 * two-argument functions over pairs; frexp/modf/remquo/sincos outputs. Results print in hex, and
 * the C standard's Annex F special cases are checked exactly, identities to a few ulps. */
#define _GNU_SOURCE
#include "check.h"
#include <float.h>
#include <inttypes.h>
#include <math.h>

static const double inputs[] = {0.0,  -0.0,  DBL_TRUE_MIN, DBL_MIN,  1e-300,    1e-10, 0.1,     0.5,
                                0.7,  1.0,   -1.0,         1.5,      2.0,       -2.5,  3.0,     M_PI / 2,
                                M_PI, -M_PI, 10.0,         100.5,    -700.0,    709.7, 710.0,   1e10,
                                1e22, 1e300, DBL_MAX,      INFINITY, -INFINITY, NAN,   0x1p-27, 1.0 - 0x1p-53};
#define INPUT_COUNT (sizeof inputs / sizeof inputs[0])

typedef double (*unary_fn)(double);
static const struct {
  const char *name;
  unary_fn fn;
} unary[] = {
    {"sin", sin},       {"cos", cos},     {"tan", tan},     {"asin", asin},
    {"acos", acos},     {"atan", atan},   {"sinh", sinh},   {"cosh", cosh},
    {"tanh", tanh},     {"asinh", asinh}, {"acosh", acosh}, {"atanh", atanh},
    {"exp", exp},       {"exp2", exp2},   {"expm1", expm1}, {"log", log},
    {"log2", log2},     {"log10", log10}, {"log1p", log1p}, {"sqrt", sqrt},
    {"cbrt", cbrt},     {"erf", erf},     {"erfc", erfc},   {"tgamma", tgamma},
    {"lgamma", lgamma}, {"floor", floor}, {"ceil", ceil},   {"trunc", trunc},
    {"round", round},   {"rint", rint},   {"fabs", fabs},   {"logb", logb},
    {"j0", j0},         {"y0", y0},       {"exp10", exp10}, {"significand", significand},
};

static uint64_t bits(double d) {
  uint64_t u;
  memcpy(&u, &d, sizeof u);
  return u;
}

static void unary_functions(void) {
  for (size_t f = 0; f < sizeof unary / sizeof unary[0]; f++) {
    uint64_t digest = FNV_INIT;
    printf("%s:", unary[f].name);
    for (size_t i = 0; i < INPUT_COUNT; i++) {
      const double r = unary[f].fn(OPAQUE(inputs[i]));
      digest = fnv1a_u64(digest, bits(r));
      if (i % 4 == 0) printf(" %a", r);
    }
    printf(" fnv=%016" PRIx64 "\n", digest);
  }
}

typedef double (*binary_fn)(double, double);
static const struct {
  const char *name;
  binary_fn fn;
} binary[] = {{"pow", pow},    {"atan2", atan2}, {"hypot", hypot}, {"fmod", fmod},         {"remainder", remainder},
              {"fdim", fdim},  {"fmax", fmax},   {"fmin", fmin},   {"copysign", copysign}, {"nextafter", nextafter},
              {"scalb", scalb}};

static void binary_functions(void) {
  for (size_t f = 0; f < sizeof binary / sizeof binary[0]; f++) {
    uint64_t digest = FNV_INIT;
    for (size_t i = 0; i < INPUT_COUNT; i++) {
      for (size_t j = 0; j < INPUT_COUNT; j++) {
        digest = fnv1a_u64(digest, bits(binary[f].fn(OPAQUE(inputs[i]), OPAQUE(inputs[j]))));
      }
    }
    printf("%s: %a %a %a fnv=%016" PRIx64 "\n", binary[f].name, binary[f].fn(OPAQUE(2.0), OPAQUE(0.5)),
           binary[f].fn(OPAQUE(-3.0), OPAQUE(7.25)), binary[f].fn(OPAQUE(1e300), OPAQUE(-1e-300)), digest);
  }
}

static void decompositions(void) {
  uint64_t digest = FNV_INIT;
  for (size_t i = 0; i < INPUT_COUNT; i++) {
    const double x = OPAQUE(inputs[i]);
    int exponent = 0, quotient = 0;
    const double mantissa = frexp(x, &exponent);
    double integral = 0;
    const double fraction = modf(x, &integral);
    const double rem = remquo(x, OPAQUE(0.75), &quotient);
    double s = 0, c = 0;
    sincos(x, &s, &c);
    digest = fnv1a_u64(digest, bits(mantissa) ^ (uint64_t)exponent);
    digest = fnv1a_u64(digest, bits(fraction) ^ bits(integral));
    digest = fnv1a_u64(digest, bits(rem) ^ (uint64_t)(quotient & 7));
    digest = fnv1a_u64(digest, bits(s) ^ bits(c));
    if (isfinite(x)) {
      CHECK(ldexp(mantissa, exponent) == x);
      CHECK(x == 0 || (fabs(mantissa) >= 0.5 && fabs(mantissa) < 1));
      CHECK(integral + fraction == x);
      CHECK(s == sin(x) && c == cos(x));
    }
    CHECK(ilogb(x) == (x == 0 ? FP_ILOGB0 : isnan(x) ? FP_ILOGBNAN : isinf(x) ? INT32_MAX : exponent - 1));
  }
  printf("decompositions fnv=%016" PRIx64 "\n", digest);
}

/* Annex F: results that are exact by definition. */
static void annex_f(void) {
  const double zero = OPAQUE(0.0), negative_zero = OPAQUE(-0.0), inf = OPAQUE(INFINITY), nan = OPAQUE(NAN);
  CHECK(pow(nan, zero) == 1.0);
  CHECK(pow(OPAQUE(1.0), nan) == 1.0);
  CHECK(pow(OPAQUE(-1.0), inf) == 1.0);
  CHECK(pow(zero, OPAQUE(-1.0)) == INFINITY);
  CHECK(pow(negative_zero, OPAQUE(-1.0)) == -INFINITY);
  CHECK(pow(negative_zero, OPAQUE(-2.0)) == INFINITY);
  CHECK(pow(OPAQUE(-8.0), OPAQUE(1.0 / 3)) != pow(OPAQUE(-8.0), OPAQUE(1.0 / 3)));
  CHECK(pow(OPAQUE(2.0), OPAQUE(-1074.0)) == DBL_TRUE_MIN);
  CHECK(pow(OPAQUE(10.0), OPAQUE(22.0)) == 1e22);
  CHECK(log(zero) == -INFINITY && log(negative_zero) == -INFINITY);
  CHECK(isnan(log(OPAQUE(-1.0))));
  CHECK(log(OPAQUE(1.0)) == 0 && !signbit(log(OPAQUE(1.0))));
  CHECK(exp(-inf) == 0 && exp(inf) == INFINITY && exp(zero) == 1.0);
  CHECK(exp(OPAQUE(710.0)) == INFINITY && exp(OPAQUE(-746.0)) == 0);
  CHECK(sqrt(negative_zero) == 0 && signbit(sqrt(negative_zero)));
  CHECK(sqrt(inf) == INFINITY && isnan(sqrt(-inf)));
  CHECK(fabs(cbrt(OPAQUE(-27.0)) + 3.0) <= 4 * DBL_EPSILON);
  CHECK(atan2(zero, negative_zero) == M_PI && atan2(negative_zero, negative_zero) == -M_PI);
  CHECK(atan2(zero, zero) == 0 && signbit(atan2(negative_zero, zero)));
  CHECK(atan2(inf, inf) == M_PI / 4 && atan2(inf, -inf) == 3 * M_PI / 4);
  CHECK(hypot(inf, nan) == INFINITY && hypot(nan, -inf) == INFINITY);
  CHECK(hypot(OPAQUE(3.0), OPAQUE(4.0)) == 5.0);
  CHECK(hypot(OPAQUE(DBL_MAX), OPAQUE(1.0)) == DBL_MAX);
  CHECK(sin(negative_zero) == 0 && signbit(sin(negative_zero)));
  CHECK(isnan(sin(inf)) && isnan(cos(-inf)));
  CHECK(tanh(inf) == 1.0 && tanh(-inf) == -1.0);
  CHECK(atanh(OPAQUE(1.0)) == INFINITY);
  CHECK(tgamma(OPAQUE(5.0)) == 24.0 && tgamma(OPAQUE(171.0)) < INFINITY && tgamma(OPAQUE(172.0)) == INFINITY);
  CHECK(tgamma(negative_zero) == -INFINITY);
  CHECK(lgamma(OPAQUE(1.0)) == 0 && lgamma(OPAQUE(2.0)) == 0);
  CHECK(erf(inf) == 1.0 && erfc(inf) == 0 && erfc(-inf) == 2.0);
  CHECK(fmod(OPAQUE(5.5), OPAQUE(2.0)) == 1.5 && fmod(OPAQUE(-5.5), OPAQUE(2.0)) == -1.5);
  CHECK(isnan(fmod(inf, OPAQUE(1.0))) && fmod(OPAQUE(1.0), inf) == 1.0);
  CHECK(remainder(OPAQUE(5.5), OPAQUE(2.0)) == -0.5 && remainder(OPAQUE(4.5), OPAQUE(2.0)) == 0.5);
  CHECK(nextafter(zero, OPAQUE(1.0)) == DBL_TRUE_MIN && nextafter(OPAQUE(1.0), OPAQUE(2.0)) == 1.0 + DBL_EPSILON);
  CHECK(nextafter(DBL_MAX, inf) == INFINITY);
  CHECK(exp2(OPAQUE(-1074.0)) == DBL_TRUE_MIN && exp2(OPAQUE(1023.0)) == 0x1p1023);
  CHECK(log2(OPAQUE(0x1p-1074)) == -1074.0 && log10(OPAQUE(1e-300)) == -300.0);
  CHECK(expm1(OPAQUE(1e-300)) == 1e-300 && log1p(OPAQUE(-1.0)) == -INFINITY);
}

/* Identities that hold to within a few units in the last place. */
static void identities(void) {
  rng_seed(99);
  for (int n = 0; n < 2000; n++) {
    const double x = OPAQUE((double)(rng_next() >> 11) * 0x1p-53 * 20.0 - 10.0);
    const double s = sin(x), c = cos(x);
    CHECK(fabs(s * s + c * c - 1.0) <= 4 * DBL_EPSILON);
    CHECK(fabs(exp(log(fabs(x) + 1e-3)) - (fabs(x) + 1e-3)) <= 8 * DBL_EPSILON * (fabs(x) + 1e-3));
    CHECK(fabs(atan(tan(x / 8)) - x / 8) <= 4 * DBL_EPSILON * fabs(x));
    CHECK(fabs(cbrt(x * x * x) - x) <= 4 * DBL_EPSILON * fabs(x));
    CHECK(fabs(pow(fabs(x), 2.5) - fabs(x) * fabs(x) * sqrt(fabs(x))) <= 16 * DBL_EPSILON * pow(fabs(x), 2.5));
    const double sq = sqrt(fabs(x));
    CHECK(sq * sq == fabs(x) || fabs(sq * sq - fabs(x)) <= 2 * DBL_EPSILON * fabs(x));
    /* Subtracting the exponentials loses up to an ulp of cosh(x), not of sinh(x). */
    CHECK(fabs(sinh(x) - (exp(x) - exp(-x)) / 2) <= 8 * DBL_EPSILON * cosh(x));
  }
  printf("constants %a %a %a %a\n", acos(OPAQUE(-1.0)), exp(OPAQUE(1.0)), log(OPAQUE(2.0)), sqrt(OPAQUE(2.0)));
  CHECK(acos(OPAQUE(-1.0)) == M_PI && exp(OPAQUE(1.0)) == M_E && log(OPAQUE(2.0)) == M_LN2);
}

int main(void) {
  unary_functions();
  binary_functions();
  decompositions();
  annex_f();
  identities();
  return finish();
}
