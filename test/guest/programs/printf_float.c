// guest-levels: O0 O2 O3-power9
/* printf's floating-point conversions: %f %F %e %E %g %G %a %A with every flag, width and precision,
 * over special values (signed zeros, infinities, NaN, subnormals, extremes), exact decimal expansions
 * of large and tiny doubles, round-half-even ties, long double (%Lf %Le %Lg %La), and strtod reading
 * back %.17g and %a exactly. */
#include "check.h"
#include <float.h>
#include <math.h>
#include <stdarg.h>

__attribute__((format(printf, 2, 3))) static void expect(const char *expected, const char *format, ...) {
  char text[512];
  va_list args;
  va_start(args, format);
  const int n = vsnprintf(text, sizeof text, format, args);
  va_end(args);
  check_str_at(text, expected, format, __FILE__, __LINE__);
  CHECK_EQ(n, strlen(expected));
}

static void known(void) {
  expect("3.141593", "%f", 3.14159265358979);
  expect("3.14", "%.2f", 3.14159);
  expect("3", "%.0f", 3.14159);
  expect("3.", "%#.0f", 3.14159);
  expect("2", "%.0f", 2.5); /* ties to even: the decimal expansion of 2.5 is exact */
  expect("4", "%.0f", 3.5);
  expect("0.1", "%.1f", 0.15);   /* 0.15 is 0.1499999... in binary */
  expect("0.12", "%.2f", 0.125); /* exact tie, to even */
  expect("1.000000e+00", "%e", 1.0);
  expect("1.234568E+05", "%E", 123456.789);
  expect("1e+100", "%g", 1e100);
  expect("0.0001", "%g", 0.0001);
  expect("1e-05", "%g", 0.00001);
  expect("123457", "%g", 123456.7);
  expect("1.23457e+06", "%g", 1234567.0);
  expect("100000", "%g", 100000.0);
  expect("1e+06", "%g", 1000000.0);
  expect("1.50000", "%#g", 1.5);
  expect("1.5", "%G", 1.5);
  expect("0x1p+0", "%a", 1.0);
  expect("0x1.8p+1", "%a", 3.0);
  expect("-0x1.999999999999ap-4", "%a", -0.1);
  expect("0X1.91EB851EB851FP+1", "%A", 3.14);
  expect("0x1.0p+0", "%.1a", 1.0);
  expect("0x2p+0", "%.0a", 1.5); /* rounds to even at the hex digit */
  expect("0x0.0000000000001p-1022", "%a", DBL_TRUE_MIN);
  expect("inf", "%f", INFINITY);
  expect("-INF", "%F", -INFINITY);
  expect("nan", "%g", NAN);
  expect("-nan", "%e", -NAN);
  expect("  inf", "%5.2f", INFINITY);
  expect("-0.000000", "%f", -0.0);
  expect("+0.000000", "%+f", 0.0);
  expect(" 0.000000", "% f", 0.0);
  expect("-0", "%g", -0.0);
  expect("0000003.14", "%010.2f", 3.14159);
  expect("-000003.14", "%010.2f", -3.14159);
  expect("3.14      |", "%-10.2f|", 3.14159);
  expect("     +3.14", "%+10.2f", 3.14159);
  expect("   3.1", "%*.*f", 6, 1, 3.14159);
  expect(
      "179769313486231570814527423731704356798070567525844996598917476803157260780028538760589558632766878171540"
      "458953514382464234321326889464182768467546703537516986049910576551282076245490090389328944075868508455133"
      "942304583236903222948165808559332123348274797826204144723168738177180919299881250404026184124858368.000000",
      "%f", DBL_MAX);
  expect("2.2250738585072014e-308", "%.17g", DBL_MIN);
  expect("4.9406564584124654e-324", "%.17g", DBL_TRUE_MIN);
  expect("0.1000000000000000055511151231257827021181583404541015625", "%.55f", 0.1);
  expect("1.7976931348623157e+308", "%.16e", DBL_MAX);
  expect("9007199254740992", "%.0f", OPAQUE(9007199254740992.0) + 1.0); /* 2^53 + 1 is not a double */
  expect("1e+16", "%.0e", 9.5e15);
}

static void long_doubles(void) {
  expect("0.3333333333333333333333333333333", "%.31Lf", 1.0L / 3);
  expect("1.00000000000000000000000000000e+30", "%.29Le", 1e30L);
  expect("12345678901234567890", "%.0Lf", 12345678901234567890.0L);
  expect("0.1", "%Lg", 0.1L);
  printf("long double %La %.25Lg\n", 0.1L, 2.0L / 3);
}

static void table(void) {
  static const double values[] = {0.0,           -0.0,     1.0,        -1.0,          0.5,     0.1,
                                  1.0 / 3,       2.0 / 3,  100.0,      1e15,          1e16,    1e-5,
                                  123456789.125, 9.999999, 0.00009999, DBL_EPSILON,   DBL_MIN, 1e300,
                                  -1e-300,       INFINITY, NAN,        6.02214076e23, 5e-324};
  static const char *const formats[] = {"%f", "%.3f", "%e",    "%.0e",  "%#.0e",   "%g",       "%.10g", "%#g", "%G",
                                        "%a", "%.3a", "%+.2e", "% .4g", "%015.4f", "%-12.3g|", "%.17g", "%.1g"};
  for (size_t f = 0; f < sizeof formats / sizeof formats[0]; f++) {
    printf("%-9s", formats[f]);
    for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
      putchar(' ');
      printf(formats[f], values[v]);
    }
    putchar('\n');
  }
}

/* %.17g and %a are exact: reading them back gives the same double. */
static void round_trips(void) {
  rng_seed(17);
  int exact = 1;
  for (int n = 0; n < 3000; n++) {
    uint64_t raw = rng_next();
    double d;
    memcpy(&d, &raw, sizeof d);
    if (!isfinite(d)) continue;
    char decimal[64], hex[64];
    snprintf(decimal, sizeof decimal, "%.17g", d);
    snprintf(hex, sizeof hex, "%a", d);
    const double from_decimal = strtod(decimal, NULL), from_hex = strtod(hex, NULL);
    if (memcmp(&from_decimal, &d, sizeof d) != 0 || memcmp(&from_hex, &d, sizeof d) != 0) {
      exact = 0;
      fprintf(stderr, "round trip of %s / %s failed\n", decimal, hex);
    }
    if (n % 300 == 0) printf("round trip %s %s\n", decimal, hex);
  }
  CHECK(exact);
  CHECK(strtod("0x1.fffffffffffff8p1023", NULL) == INFINITY);
  CHECK(strtod("2.4703282292062328e-324", NULL) == DBL_TRUE_MIN); /* just above half: rounds up */
  CHECK(strtod("2.4703282292062327e-324", NULL) == 0.0);
  CHECK(strtof("1.00000005960464477539062500", NULL) == 1.0f); /* exact tie, to even */
}

int main(void) {
  known();
  long_doubles();
  table();
  round_trips();
  return finish();
}
