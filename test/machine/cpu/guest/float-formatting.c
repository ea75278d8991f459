/* Binary floating point through glibc: printf and strtod in every format, the rounding modes,
   fused multiply-add, the math library, single precision and IBM long double. */
#include <fenv.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile double sink;

static const double values[] = {
    0.0, -0.0, 1.0, -1.0, 0.1, 1.0 / 3.0, 2.0 / 3.0, 1e-310, -4.9e-324, 2.2250738585072014e-308,
    1.7976931348623157e308, 123456789.125, -98765.4321, 3.141592653589793, 2.718281828459045, 1e22,
    1e23, 5e-324, 0.5, 1.5, 2.5, -2.5, 1e100, 6.02214076e23, 1.0e-5, 65504.0,
};

static void formats(void) {
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    double x = values[i];
    printf("%a %.17g %e %.3f %g %.0f\n", x, x, x, x, x, x);
    float f = (float)x;
    printf("  float %a %.9g\n", f, f);
  }
  printf("%g %g %g %g\n", INFINITY, -INFINITY, NAN, -NAN);
}

static void parsing(void) {
  const char *texts[] = {"0.1", "1e-320", "2.4703282292062327e-324", "1.7976931348623158e308", "0x1.fffffffffffffp+1023",
                         "9007199254740993", "-0", "inf", "nan(123)", "1.00000000000000011102230246251565404236316680908203125",
                         "123.456e-7", "3.4028235e38"};
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    char *end;
    double d = strtod(texts[i], &end);
    float f = strtof(texts[i], 0);
    printf("%s -> %a %a %td\n", texts[i], d, f, end - texts[i]);
  }
}

static void rounding(void) {
  const int modes[] = {FE_TONEAREST, FE_TOWARDZERO, FE_UPWARD, FE_DOWNWARD};
  const char *names[] = {"nearest", "zero", "up", "down"};
  for (int m = 0; m < 4; m++) {
    fesetround(modes[m]);
    volatile double a = 1.0, b = 3.0, c = -7.0, tiny = 1e-300;
    double q = a / b, r = c / b, s = sqrt(2.0), p = tiny * tiny;
    float fq = (float)a / (float)b;
    printf("%s: %a %a %a %a %a %ld %ld %a %a\n", names[m], q, r, s, p, fq, lrint(2.5), lrint(-3.5), rint(0.5),
           nearbyint(-1.5));
    printf("  fma %a %a\n", fma(0.1, 0.7, 0.3), fma(1.0 + DBL_EPSILON, 1.0 - DBL_EPSILON, -1.0));
  }
  fesetround(FE_TONEAREST);
}

static void exceptions(void) {
  feclearexcept(FE_ALL_EXCEPT);
  volatile double zero = 0.0, one = 1.0, big = DBL_MAX;
  sink = one / zero;
  printf("divbyzero %d\n", fetestexcept(FE_DIVBYZERO) != 0);
  feclearexcept(FE_ALL_EXCEPT);
  sink = zero / zero;
  printf("invalid %d\n", fetestexcept(FE_INVALID) != 0);
  feclearexcept(FE_ALL_EXCEPT);
  sink = big * 2.0;
  printf("overflow %d inexact %d\n", fetestexcept(FE_OVERFLOW) != 0, fetestexcept(FE_INEXACT) != 0);
  feclearexcept(FE_ALL_EXCEPT);
  sink = DBL_MIN / 3.0;
  printf("underflow %d\n", fetestexcept(FE_UNDERFLOW) != 0);
  feclearexcept(FE_ALL_EXCEPT);
  sink = one + 1.0;
  printf("exact %d\n", fetestexcept(FE_ALL_EXCEPT));
}

static void library(void) {
  for (int i = -3; i <= 8; i++) {
    double x = i * 0.7 + 0.05;
    printf("%d %.17g %.17g %.17g %.17g %.17g %.17g %.17g\n", i, exp(x), log(fabs(x)), pow(fabs(x), 1.3), sin(x), cos(x),
           atan2(x, 1.5), cbrt(x));
    printf("  %.17g %.17g %.17g %ld %lld\n", hypot(x, 3.0), fmod(x * 10, 3.0), floor(x) + ceil(x) + trunc(x) + round(x),
           lround(x * 3), llrint(x * 1e10));
    printf("  %.9g %.9g %.9g\n", expf((float)x), logf(fabsf((float)x) + 1.0f), sinf((float)x));
  }
}

static void conversions(void) {
  const double xs[] = {0.5, -0.5, 1e10, -1e10, 4294967295.5, 9.3e18, -9.3e18, 1e19, 1.8e19, -1.0};
  for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
    double x = xs[i];
    int32_t i32 = (x > -2147483649.0 && x < 2147483648.0) ? (int32_t)x : -1;
    uint32_t u32 = (x > -1.0 && x < 4294967296.0) ? (uint32_t)x : 7;
    int64_t i64 = (x > -9.3e18 && x < 9.2e18) ? (int64_t)x : -2;
    uint64_t u64 = (x > -1.0 && x < 1.8e19) ? (uint64_t)x : 9;
    printf("%.1f %d %u %lld %llu %a %a\n", x, i32, u32, (long long)i64, (unsigned long long)u64, (double)(int64_t)(x / 7),
           (double)(uint64_t)(x > 0 ? x : -x));
  }
  for (uint64_t n = 1; n < UINT64_MAX / 3; n = n * 3 + 1) printf("%a %a ", (double)n, (float)n);
  printf("\n");
}

static void long_double(void) {
  long double a = 1.0L / 3.0L, b = 1e300L, c = a * b + 1.0L;
  printf("%.30Lg %.30Lg %.25Le\n", a, c, b / 7.0L);
  long double sum = 0.0L;
  for (int i = 1; i <= 100; i++) sum += 1.0L / i;
  printf("%.32Lg\n", sum);
}

int main(void) {
  formats();
  parsing();
  rounding();
  exceptions();
  library();
  conversions();
  long_double();
  return 0;
}
