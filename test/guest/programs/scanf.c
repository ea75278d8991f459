// guest-run: {"stdin": "17 -0x1F 017 3.25e2 alpha\n12:34:56 key=value;rest\n-9223372036854775808 18446744073709551615 1e400 nan -inf\n  x 0.5 0x1p-3 tail\n42 43 44 45 46 47 48 49 50 51\n"}
/* scanf's conversions: %d %i (decimal, 0x and 0 prefixes) %u %o %x %f %e %g %a %s %c %[set] %[^set] %n
 * %p %%, field widths, assignment suppression, length modifiers (hh h l ll j z), literal matching and
 * whitespace, return counts on partial matches and EOF, overflowing input; first with sscanf, then
 * with scanf from standard input. */
#include "check.h"
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stddef.h>

static void integers(void) {
  int a = 0, b = 0, c = 0, d = 0;
  CHECK_EQ(sscanf("12 -34 +56 0", "%d %d %d %d", &a, &b, &c, &d), 4);
  CHECK(a == 12 && b == -34 && c == 56 && d == 0);
  CHECK_EQ(sscanf("0x1A 017 -0X10 9", "%i %i %i %i", &a, &b, &c, &d), 4);
  CHECK(a == 26 && b == 15 && c == -16 && d == 9);
  unsigned u = 0, o = 0, x = 0, big = 0;
  CHECK_EQ(sscanf("4294967295 777 DeadBeef 0xff", "%u %o %x %x", &u, &o, &x, &big), 4);
  CHECK(u == 4294967295u && o == 511 && x == 0xdeadbeef && big == 255);
  signed char hh = 0;
  short h = 0;
  long l = 0;
  long long ll = 0;
  intmax_t j = 0;
  size_t z = 0;
  ptrdiff_t t = 0;
  CHECK_EQ(sscanf("-128 -32768 -9223372036854775807 123456789012345 77 18446744073709551615 -3",
                  "%hhd %hd %ld %lld %jd %zu %td", &hh, &h, &l, &ll, &j, &z, &t),
           7);
  CHECK(hh == -128 && h == -32768 && l == -9223372036854775807L && ll == 123456789012345LL && j == 77);
  CHECK(z == SIZE_MAX && t == -3);
  CHECK_EQ(sscanf("12345", "%3d%2d", &a, &b), 2);
  CHECK(a == 123 && b == 45);
  CHECK_EQ(sscanf("1,2", "%d,%d", &a, &b), 2);
  CHECK_EQ(sscanf("1;2", "%d,%d", &a, &b), 1);
  CHECK_EQ(sscanf("", "%d", &a), EOF);
  CHECK_EQ(sscanf("   ", "%d", &a), EOF);
  CHECK_EQ(sscanf("abc", "%d", &a), 0);
  CHECK_EQ(sscanf("10 20 30", "%d %*d %d", &a, &b), 2);
  CHECK(a == 10 && b == 30);
  int consumed = 0;
  CHECK_EQ(sscanf("  77xyz", "%d%n", &a, &consumed), 1);
  CHECK(a == 77 && consumed == 4);
  CHECK_EQ(sscanf("100%", "%d%%", &a), 1);
  void *pointer = NULL;
  CHECK_EQ(sscanf("0x1234", "%p", &pointer), 1);
  CHECK(pointer == (void *)0x1234);
  long long overflowing = 0;
  CHECK_EQ(sscanf("99999999999999999999", "%lld", &overflowing), 1);
  printf("overflowing %%lld reads %lld\n", overflowing);
}

static void floating(void) {
  float f = 0;
  double d = 0, e = 0, g = 0, h = 0;
  long double ld = 0;
  CHECK_EQ(sscanf("3.5 -2e-3 0x1.8p1 .25 1e1000", "%f %lf %lf %lf %Lf", &f, &d, &e, &g, &ld), 5);
  CHECK(f == 3.5f && d == -2e-3 && e == 3.0 && g == 0.25 && isinf(ld));
  CHECK_EQ(sscanf("inf -INFINITY nan 1e-400", "%lf %lf %lf %lf", &d, &e, &g, &h), 4);
  CHECK(isinf(d) && d > 0 && isinf(e) && e < 0 && isnan(g) && h == 0);
  CHECK_EQ(sscanf("1.5e", "%lf", &d), 1);
  CHECK(d == 1.5);
  CHECK_EQ(sscanf("12.75abc", "%4lf", &d), 1);
  CHECK(d == 12.7);
  CHECK_EQ(sscanf("0.1", "%la", &d), 1);
  CHECK(d == 0.1);
  CHECK_EQ(sscanf("4.9406564584124654e-324", "%lg", &d), 1);
  CHECK(d == DBL_TRUE_MIN);
}

static void strings(void) {
  char word[16] = "", other[16] = "", set[16] = "";
  char chars[4] = "";
  CHECK_EQ(sscanf("  hello   world", "%15s %15s", word, other), 2);
  CHECK_STR(word, "hello");
  CHECK_STR(other, "world");
  CHECK_EQ(sscanf("abcdefgh", "%3c%4s", chars, word), 2);
  CHECK(memcmp(chars, "abc", 3) == 0);
  CHECK_STR(word, "defg");
  CHECK_EQ(sscanf("key=value;rest", "%15[^=]=%15[^;];%15s", word, other, set), 3);
  CHECK_STR(word, "key");
  CHECK_STR(other, "value");
  CHECK_STR(set, "rest");
  CHECK_EQ(sscanf("aaabbbccc", "%15[ab]%15[a-c]", word, other), 2);
  CHECK_STR(word, "aaabbb");
  CHECK_STR(other, "ccc");
  CHECK_EQ(sscanf("]]x", "%15[]]", word), 1);
  CHECK_STR(word, "]]");
  CHECK_EQ(sscanf("xyz", "%15[abc]", word), 0);
  char *allocated = NULL;
  CHECK_EQ(sscanf("dynamic string", "%ms", &allocated), 1);
  CHECK(allocated != NULL && strcmp(allocated, "dynamic") == 0);
  free(allocated);
  char c = 0;
  CHECK_EQ(sscanf("   q", " %c", &c), 1);
  CHECK_EQ(c, 'q');
  CHECK_EQ(sscanf("   q", "%c", &c), 1);
  CHECK_EQ(c, ' ');
}

/* The same conversions reading the program's standard input. */
static void from_stdin(void) {
  int a = 0, b = 0, c = 0;
  double d = 0;
  char word[32] = "";
  int got = scanf("%d %i %i %lf %31s", &a, &b, &c, &d, word);
  printf("line 1: %d items: %d %d %d %g %s\n", got, a, b, c, d, word);
  CHECK(got == 5 && a == 17 && b == -31 && c == 15 && d == 325 && strcmp(word, "alpha") == 0);
  int hours = 0, minutes = 0, seconds = 0;
  char key[16] = "", value[16] = "", rest[16] = "";
  got = scanf(" %d:%d:%d %15[^=]=%15[^;];%15s", &hours, &minutes, &seconds, key, value, rest);
  printf("line 2: %d items: %02d:%02d:%02d [%s] [%s] [%s]\n", got, hours, minutes, seconds, key, value, rest);
  CHECK(got == 6 && hours == 12 && minutes == 34 && seconds == 56);
  long long smallest = 0;
  unsigned long long largest = 0;
  double huge = 0, not_a_number = 0, negative_infinity = 0;
  got = scanf("%lld %llu %lf %lf %lf", &smallest, &largest, &huge, &not_a_number, &negative_infinity);
  printf("line 3: %d items: %lld %llu %g %g %g\n", got, smallest, largest, huge, not_a_number, negative_infinity);
  CHECK(got == 5 && smallest == INT64_MIN && largest == UINT64_MAX && isinf(huge) && isnan(not_a_number));
  char letter = 0;
  double half = 0, eighth = 0;
  got = scanf(" %c %lf %la %31s", &letter, &half, &eighth, word);
  printf("line 4: %d items: %c %g %g %s\n", got, letter, half, eighth, word);
  CHECK(got == 4 && letter == 'x' && half == 0.5 && eighth == 0.125);
  int total = 0, value_read = 0, count = 0;
  while (scanf("%d", &value_read) == 1) {
    total += value_read;
    count++;
  }
  printf("line 5: %d numbers summing to %d, then %s\n", count, total, feof(stdin) ? "EOF" : "no EOF");
  CHECK(count == 10 && total == 465 && feof(stdin));
  CHECK_EQ(scanf("%d", &a), EOF);
}

int main(void) {
  integers();
  floating();
  strings();
  from_stdin();
  return finish();
}
