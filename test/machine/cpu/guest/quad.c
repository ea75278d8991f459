/* __float128 (IEEE binary128): arithmetic, fused multiply-add and square root in every rounding mode,
 * the exception flags, denormals, overflow and underflow, conversions to and from float, double, long
 * double and integers, comparisons with NaNs, rounding to integers, exponents and signs, printed with
 * strfromf128 and as bits. Built with -mcpu=power9 it runs on the VSX quad-precision instructions;
 * otherwise on libgcc's and libm's routines, which pick their hardware versions when AT_HWCAP2
 * advertises IEEE128. */
#define _GNU_SOURCE
#define __STDC_WANT_IEC_60559_TYPES_EXT__
#include <fenv.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef __float128 quad;

/* Operands read through volatile storage, so that the compiler folds nothing. */
static volatile quad q_one = 1, q_two = 2, q_three = 3, q_tenth = 0.1Q, q_big = 1e4000Q, q_tiny = 0x1p-16380Q;
static volatile double d_third = 1.0 / 3;
static volatile int64_t i_minus = -1234567890123456789LL;
static volatile uint64_t u_max = UINT64_MAX;

static void print(const char *label, quad x) {
  char text[80];
  strfromf128(text, sizeof text, "%.36g", x);
  printf("%-22s %s\n", label, text);
}

static void print_bits(const char *label, quad x) {
  uint64_t words[2];
  memcpy(words, &x, sizeof words);
  printf("%-22s %016llx%016llx\n", label, (unsigned long long)words[1], (unsigned long long)words[0]);
}

static void print_flags(const char *label) {
  printf("%-22s%s%s%s%s%s\n", label, fetestexcept(FE_INEXACT) ? " inexact" : "",
         fetestexcept(FE_UNDERFLOW) ? " underflow" : "", fetestexcept(FE_OVERFLOW) ? " overflow" : "",
         fetestexcept(FE_DIVBYZERO) ? " divbyzero" : "", fetestexcept(FE_INVALID) ? " invalid" : "");
}

static void arithmetic(void) {
  const quad third = q_one / q_three;
  print("1/3", third);
  print("sqrt(2)", sqrtf128(q_two));
  print("fma(1/3, 3, -1)", fmaf128(third, q_three, -q_one));
  print("0.1 * 3 - 0.3", q_tenth * 3 - 0.3Q);
  quad harmonic = 0;
  for (int k = 1; k <= 200; k++) harmonic += q_one / k;
  print("H(200)", harmonic);
  quad factorial = 1;
  for (int k = 1; k <= 40; k++) factorial *= k;
  print("40!", factorial);
  /* Machin: pi = 16 atan(1/5) - 4 atan(1/239), by series. */
  quad pi = 0;
  for (int k = 0; k < 60; k++) {
    quad a = q_one, b = q_one;
    for (int j = 0; j < 2 * k + 1; j++) a /= 5, b /= 239;
    pi += (k % 2 ? -1 : 1) * (16 * a - 4 * b) / (2 * k + 1);
  }
  print("pi", pi);
  quad root = q_two;
  for (int k = 0; k < 8; k++) root = (root + q_two / root) / 2;
  print_bits("newton sqrt(2)", root);
  print_bits("sqrtf128(2)", sqrtf128(q_two));
}

static void rounding_modes(void) {
  static const int modes[] = {FE_TONEAREST, FE_TOWARDZERO, FE_UPWARD, FE_DOWNWARD};
  static const char *names[] = {"nearest", "zero", "up", "down"};
  for (int m = 0; m < 4; m++) {
    fesetround(modes[m]);
    char label[32];
    snprintf(label, sizeof label, "1/3 %s", names[m]);
    print_bits(label, q_one / q_three);
    snprintf(label, sizeof label, "-2/3 %s", names[m]);
    print_bits(label, -q_two / q_three);
    snprintf(label, sizeof label, "sqrt(3) %s", names[m]);
    print_bits(label, sqrtf128(q_three));
    snprintf(label, sizeof label, "fma %s", names[m]);
    print_bits(label, fmaf128(q_tenth, q_three, -q_one));
    snprintf(label, sizeof label, "rint(2.5) %s", names[m]);
    print(label, rintf128(q_two + q_one / 2));
    snprintf(label, sizeof label, "(double)1/3 %s", names[m]);
    printf("%-22s %a\n", label, (double)(q_one / q_three));
    snprintf(label, sizeof label, "1 - 1 %s", names[m]);
    print_bits(label, q_one - q_one);
  }
  fesetround(FE_TONEAREST);
}

static void exceptions(void) {
  feclearexcept(FE_ALL_EXCEPT);
  volatile quad x = q_one / q_three;
  print_flags("1/3:");
  feclearexcept(FE_ALL_EXCEPT);
  x = q_big * q_big;
  print("1e4000^2", x);
  print_flags("1e4000^2:");
  feclearexcept(FE_ALL_EXCEPT);
  x = q_tiny * q_tiny;
  print("tiny^2", x);
  print_flags("tiny^2:");
  feclearexcept(FE_ALL_EXCEPT);
  x = q_tiny / 1024;
  print("tiny/1024", x);
  print_flags("tiny/1024 (exact):");
  feclearexcept(FE_ALL_EXCEPT);
  x = q_tiny / 3e30Q;
  print("tiny/3e30", x);
  print_flags("tiny/3e30:");
  feclearexcept(FE_ALL_EXCEPT);
  x = q_one / (q_one - q_one);
  print("1/0", x);
  print_flags("1/0:");
  feclearexcept(FE_ALL_EXCEPT);
  x = (q_one - q_one) / (q_one - q_one);
  printf("%-22s %d %d\n", "0/0 nan signbit", isnan(x) != 0, signbit(x) != 0);
  print_flags("0/0:");
  feclearexcept(FE_ALL_EXCEPT);
  x = sqrtf128(-q_two);
  printf("%-22s %d\n", "sqrt(-2) nan", isnan(x) != 0);
  print_flags("sqrt(-2):");
  feclearexcept(FE_ALL_EXCEPT);
  printf("%-22s %d %d %d\n", "nan compares", x < q_one, x == x, isunordered(x, q_one));
  print_flags("quiet compare:");
  feclearexcept(FE_ALL_EXCEPT);
}

static void conversions(void) {
  const quad third = q_one / q_three;
  printf("%-22s %a\n", "(double)1/3", (double)third);
  printf("%-22s %a\n", "(float)1/3", (float)third);
  printf("%-22s %.32Lg\n", "(long double)1/3", (long double)third);
  print("(quad)(double)1/3", (quad)d_third);
  print("(quad)int64", (quad)i_minus);
  print("(quad)uint64 max", (quad)u_max);
  printf("%-22s %lld\n", "(int64)-1e18-0.5", (long long)(quad)(-1e18Q - 0.5Q + q_one - q_one));
  printf("%-22s %llu\n", "(uint64)1.8e19", (unsigned long long)(q_big / q_big * 1.8e19Q));
  printf("%-22s %d\n", "(int32)-7.9", (int)(-7.9Q * q_one));
  printf("%-22s %u\n", "(uint32)4e9", (unsigned)(4e9Q * q_one));
  printf("%-22s %a\n", "(double)huge", (double)(q_big * q_one));
  printf("%-22s %a\n", "(double)denormal", (double)(0x1.8p-1070Q * q_one));
  printf("%-22s %a\n", "(float)tie", (float)((quad)0x1.000001p0 * q_one + 0x1p-60Q));
  print("floor(-2.5)", floorf128(-q_two - q_one / 2));
  print("ceil(-2.5)", ceilf128(-q_two - q_one / 2));
  print("trunc(-2.5)", truncf128(-q_two - q_one / 2));
  print("round(-2.5)", roundf128(-q_two - q_one / 2));
  print("nearbyint(3.5)", nearbyintf128(q_three + q_one / 2));
  printf("%-22s %lld\n", "llrint(-3.5)", llrintf128(-q_three - q_one / 2));
}

static void comparisons_and_bits(void) {
  const quad values[] = {-q_big, -q_one, -0.0Q, 0, q_tiny / 1e10Q, q_one, q_big, INFINITY, NAN};
  const int n = sizeof values / sizeof values[0];
  for (int i = 0; i < n; i++) {
    char row[16];
    for (int j = 0; j < n; j++) {
      const quad a = values[i] * q_one, b = values[j] * q_one;
      row[j] = a < b ? '<' : a > b ? '>' : a == b ? '=' : '?';
    }
    row[n] = 0;
    printf("compare %d %s\n", i, row);
  }
  int exponent;
  const quad mantissa = frexpf128(q_big, &exponent);
  print("frexp(1e4000)", mantissa);
  printf("%-22s %d %d\n", "exponents", exponent, ilogbf128(q_tiny / 1e10Q));
  print("ldexp(1, -16494)", ldexpf128(q_one, -16494));
  print("ldexp(1, -16495)", ldexpf128(q_one, -16495));
  print("scalbn(1.5, 16383)", scalbnf128(q_three / 2, 16383));
  print("copysign(2, -0)", copysignf128(q_two, -0.0Q));
  print("fabs(-1e4000)", fabsf128(-q_big));
  print_bits("-0", -(q_one - q_one));
  print_bits("nan(0x123)", nanf128("0x123"));
  print("nextafter(1, 2)", nextafterf128(q_one, q_two));
  print("fmod(1e4000, 7)", fmodf128(q_big, 7));
}

int main(void) {
  arithmetic();
  rounding_modes();
  exceptions();
  conversions();
  comparisons_and_bits();
  return 0;
}
