// guest-levels: O0 O2 O3-power9
/* Extended precision: long double (IBM double-double on ppc64le: pairs of doubles combined by libgcc
 * with error-free transformations, fused multiply-adds included) and __float128 (IEEE binary128,
 * in software on POWER8, in xsaddqp/xsmulqp/xsdivqp/xssqrtqp hardware with -mcpu=power9):
 * arithmetic, conversions, printf/strtold and quad-precision strings. */
#define _GNU_SOURCE
#define __STDC_WANT_IEC_60559_TYPES_EXT__
#include "check.h"
#include <float.h>
#include <inttypes.h>
#include <math.h>

static void print_quad(const char *label, __float128 x) {
  char text[80];
  strfromf128(text, sizeof text, "%.36g", x);
  printf("%s %s\n", label, text);
}

static void long_double_arithmetic(void) {
  CHECK_EQ(sizeof(long double), 16);
  const long double third = OPAQUE(1.0L) / OPAQUE(3.0L);
  printf("LDBL_MANT_DIG %d LDBL_DIG %d\n", LDBL_MANT_DIG, LDBL_DIG);
  printf("1/3 %.32Lf\n", third);
  printf("sqrtl(2) %.32Lf\n", sqrtl(OPAQUE(2.0L)));
  /* Double-double keeps about 106 bits: 1 + 2^-100 is representable, 1 + 2^-60 survives a sum. */
  const long double tiny = OPAQUE(0x1p-100L);
  CHECK(OPAQUE(1.0L) + tiny != 1.0L);
  CHECK((OPAQUE(1.0L) + tiny) - 1.0L == tiny);
  CHECK((double)(OPAQUE(1.0L) + tiny) == 1.0);
  CHECK(fabsl(third * 3.0L - 1.0L) < 0x1p-100L);
  long double sum = 0;
  for (int k = 1; k <= 1000; k++) sum += 1.0L / ((long double)k * k);
  printf("sum 1/k^2 (k<=1000) %.30Lf\n", sum);
  CHECK(fabsl(sum - 1.643934566681559803139058023822L) < 1e-27L);
  long double factorial = 1;
  for (int k = 1; k <= 30; k++) factorial *= OPAQUE(k);
  printf("30! %.0Lf\n", factorial);
  CHECK(factorial == 265252859812191058636308480000000.0L);
  CHECK((uint64_t)(factorial / 1e16L) == 26525285981219105ULL);
  const long double big = OPAQUE(18446744073709551615.0L); /* 2^64 - 1 exactly */
  CHECK_EQ((uint64_t)big, UINT64_MAX);
  CHECK_EQ((int64_t)OPAQUE(-9223372036854775807.0L), (uint64_t)-INT64_MAX);
  const long double parsed = strtold("3.14159265358979323846264338327950288", NULL);
  printf("strtold(pi) %.31Le\n", parsed);
  CHECK(fabsl(parsed - 3.14159265358979323846264338327950288L) < 1e-30L);
  CHECK(fabsl(parsed - acosl(-1.0L)) < 1e-30L);
  printf("expl(1) %.30Lf logl(10) %.30Lf\n", expl(OPAQUE(1.0L)), logl(OPAQUE(10.0L)));
  CHECK(fabsl(expl(OPAQUE(1.0L)) - 2.718281828459045235360287471352662L) < 1e-29L);
  CHECK(isinf(OPAQUE(LDBL_MAX) * 2.0L));
  CHECK(isnan(OPAQUE(0.0L) / OPAQUE(0.0L)));
}

static void quad_arithmetic(void) {
  const __float128 one = OPAQUE((__float128)1), three = OPAQUE((__float128)3);
  const __float128 third = one / three;
  print_quad("q 1/3", third);
  print_quad("q sqrt(2)", sqrtf128(OPAQUE((__float128)2)));
  print_quad("q 2^-16494", ldexpf128(one, -16494));
  CHECK(fabsf128(third * 3 - one) <= ldexpf128(one, -112));
  CHECK(one + ldexpf128(one, -112) != one);
  CHECK(one + ldexpf128(one, -113) == one); /* a tie, to even */
  CHECK(one + ldexpf128(one, -113) + ldexpf128(one, -113) == one);
  __float128 x = OPAQUE((__float128)2);
  for (int k = 0; k < 6; k++) x = (x + 2 / x) / 2; /* Newton for sqrt(2) */
  CHECK(fabsf128(x - sqrtf128((__float128)2)) <= ldexpf128(one, -111));
  const __float128 fma_result = fmaf128(third, three, -one);
  print_quad("q fma(1/3, 3, -1)", fma_result);
  CHECK(fma_result == -ldexpf128(one, -114) || fma_result == ldexpf128(one, -113) ||
        fabsf128(fma_result) < ldexpf128(one, -110));
  const uint64_t big = OPAQUE(0xfedcba987654ULL); /* its square needs 96 bits: exact */
  const __float128 wide = (__float128)big * (__float128)big;
  CHECK((uint64_t)(wide / (__float128)big) == big);
  CHECK((unsigned __int128)wide == (unsigned __int128)big * big);
  CHECK((uint64_t)fmodf128(wide, (__float128)1000000007) == (uint64_t)(((unsigned __int128)big * big) % 1000000007));
  char text[80];
  strfromf128(text, sizeof text, "%.30e", wide);
  printf("q big^2 %s\n", text);
  const __float128 parsed = strtof128("1.189731495357231765085759326628007016e4932", NULL);
  print_quad("q near max", parsed);
  CHECK(isinf(parsed * 2));
  CHECK((double)third == 1.0 / 3);
  CHECK((long double)third - 1.0L / 3 < 1e-30L);
  CHECK((int)(OPAQUE((__float128)-7.9)) == -7);
  CHECK(OPAQUE((__float128)0.1) < (__float128)0.1f);
  CHECK(OPAQUE((__float128)0.1) > strtof128("0.1", NULL));
}

int main(void) {
  long_double_arithmetic();
  quad_arithmetic();
  return finish();
}
