/* String to number conversions: strtol/strtoul/strtoll/strtoull in every base 2..36 and base 0
 * (prefixes), leading whitespace and signs, end pointers, overflow to the limits with ERANGE,
 * negative input to the unsigned forms; atoi/atol; strtod/strtof/strtold for decimal and hex input,
 * special names, subnormals and overflow; and numbers written back in every base by hand. */
#include "check.h"
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>

static void integer_cases(void) {
  static const struct {
    const char *text;
    int base;
    long long value;
    size_t consumed;
    int range_error;
  } cases[] = {
      {"0", 10, 0, 1, 0},
      {"  +42abc", 10, 42, 5, 0},
      {"\t\n -17", 10, -17, 6, 0},
      {"0x1f", 16, 31, 4, 0},
      {"0x1f", 0, 31, 4, 0},
      {"0X", 16, 0, 1, 0},
      {"017", 0, 15, 3, 0},
      {"09", 0, 0, 1, 0},
      {"1010", 2, 10, 4, 0},
      {"zz", 36, 1295, 2, 0},
      {"Zz", 36, 1295, 2, 0},
      {"777", 8, 511, 3, 0},
      {"12", 3, 5, 2, 0},
      {"9223372036854775807", 10, LLONG_MAX, 19, 0},
      {"9223372036854775808", 10, LLONG_MAX, 19, 1},
      {"-9223372036854775808", 10, LLONG_MIN, 20, 0},
      {"-9223372036854775809", 10, LLONG_MIN, 20, 1},
      {"123456789012345678901234567890", 10, LLONG_MAX, 30, 1},
      {"7fffffffffffffff", 16, LLONG_MAX, 16, 0},
      {"-", 10, 0, 0, 0},
      {"+ 1", 10, 0, 0, 0},
      {"", 10, 0, 0, 0},
      {"1e5", 10, 1, 1, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *end = NULL;
    errno = 0;
    const long long value = strtoll(cases[i].text, &end, cases[i].base);
    const int range_error = errno == ERANGE;
    printf("strtoll(\"%s\", %d) = %lld, consumed %td%s\n", cases[i].text, cases[i].base, value, end - cases[i].text,
           range_error ? ", ERANGE" : "");
    CHECK_EQ(value, cases[i].value);
    CHECK_EQ((size_t)(end - cases[i].text), cases[i].consumed);
    CHECK_EQ(range_error, cases[i].range_error);
    errno = 0;
    const long as_long = strtol(cases[i].text, &end, cases[i].base);
    CHECK_EQ(as_long, cases[i].value);
  }
  errno = 0;
  CHECK_EQ(strtoul("-1", NULL, 10), ULONG_MAX); /* negation in the unsigned type, no error */
  CHECK_EQ(errno, 0);
  CHECK_EQ(strtoull("18446744073709551615", NULL, 10), ULLONG_MAX);
  errno = 0;
  CHECK_EQ(strtoull("18446744073709551616", NULL, 10), ULLONG_MAX);
  CHECK_EQ(errno, ERANGE);
  errno = 0;
  CHECK_EQ(strtoul("-18446744073709551616", NULL, 10), ULONG_MAX);
  CHECK_EQ(errno, ERANGE);
  errno = 0;
  CHECK_EQ(strtol("1", NULL, 1), 0);
  CHECK_EQ(errno, EINVAL);
  CHECK_EQ(atoi("  -2147483648"), (uint64_t)(int64_t)INT_MIN);
  CHECK_EQ(atol("12345678901"), 12345678901LL);
  CHECK_EQ(strtoimax("-0x10", NULL, 0), (uint64_t)-16LL);
  CHECK_EQ(strtoumax("11111111", NULL, 2), 255);
}

/* Writes x in base b and reads it back with strtoull. */
static void every_base(void) {
  uint64_t digest = FNV_INIT;
  rng_seed(36);
  for (int n = 0; n < 500; n++) {
    const uint64_t x = n == 0 ? 0 : n == 1 ? UINT64_MAX : rng_next() >> rng_below(64);
    for (int base = 2; base <= 36; base++) {
      char digits[72];
      int length = 0;
      uint64_t rest = x;
      do {
        const int d = (int)(rest % (uint64_t)base);
        digits[length++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        rest /= (uint64_t)base;
      } while (rest);
      char text[72];
      for (int i = 0; i < length; i++) text[i] = digits[length - 1 - i];
      text[length] = '\0';
      char *end = NULL;
      CHECK_EQ(strtoull(text, &end, base), x);
      CHECK(*end == '\0');
      digest = fnv1a(digest, text, (size_t)length);
    }
  }
  printf("every base fnv=%016" PRIx64 "\n", digest);
}

static void floating_cases(void) {
  static const char *const texts[] = {"0",
                                      "-0",
                                      "1.5",
                                      "  -2.25e+3xyz",
                                      ".5",
                                      "5.",
                                      "1e",
                                      "1e+",
                                      "0x1.8p1",
                                      "0x.1p4",
                                      "0x1p-1074",
                                      "0x1p-1075",
                                      "1e-320",
                                      "1e-400",
                                      "1.8e308",
                                      "inf",
                                      "-Infinity",
                                      "nan",
                                      "NAN(abc)",
                                      "nanx",
                                      "0.1",
                                      "3.141592653589793238462643",
                                      "1e23",
                                      "8.5e-324",
                                      "123456789012345678901234567890",
                                      "0x",
                                      "."};
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    char *end = NULL;
    errno = 0;
    const double d = strtod(texts[i], &end);
    const int range_error = errno == ERANGE;
    errno = 0;
    const float f = strtof(texts[i], NULL);
    const long double ld = strtold(texts[i], NULL);
    printf("strtod(\"%s\") = %a (%.17g), consumed %td%s; strtof %a; strtold %La\n", texts[i], d, d, end - texts[i],
           range_error ? ", ERANGE" : "", (double)f, ld);
  }
  char *end = NULL;
  CHECK(strtod("0x1p-1075", &end) == 0 && *end == '\0');
  CHECK(strtod("0x1.0000000000001p-1075", NULL) == DBL_TRUE_MIN);
  errno = 0;
  CHECK(strtod("1e-400", NULL) == 0 && errno == ERANGE);
  errno = 0;
  CHECK(isinf(strtod("1.8e308", NULL)) && errno == ERANGE);
  CHECK(strtod("1e23", NULL) == 1e23);
  CHECK(strtod("5.", &end) == 5.0 && *end == '\0');
  CHECK(strtod("1e+", &end) == 1.0 && *end == 'e');
  CHECK(strtod("0x", &end) == 0 && *end == 'x');
  CHECK(strtod(".", &end) == 0 && *end == '.');
  CHECK(isnan(strtod("NAN(abc)", &end)) && *end == '\0');
  CHECK(strtof("3.4028235e38", NULL) == FLT_MAX);
  CHECK(strtof("1e-46", NULL) == 0.0f);
  CHECK(atof("2.5") == 2.5);
}

int main(void) {
  integer_cases();
  every_base();
  floating_cases();
  return finish();
}
