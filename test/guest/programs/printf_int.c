/* printf's integer, character, string and pointer conversions: %d %i %u %o %x %X %c %s %p %n %%,
 * every flag (- + space # 0), widths and precisions (literal and *), every length modifier
 * (hh h l ll j z t), snprintf truncation and return values, positional arguments, and the same
 * output through printf, fprintf, dprintf and vsnprintf. */
#define _GNU_SOURCE
#include "check.h"
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

__attribute__((format(printf, 2, 3))) static void expect(const char *expected, const char *format, ...) {
  char text[256];
  va_list args;
  va_start(args, format);
  const int n = vsnprintf(text, sizeof text, format, args);
  va_end(args);
  check_str_at(text, expected, format, __FILE__, __LINE__);
  CHECK_EQ(n, strlen(expected));
}

static void known(void) {
  expect("42", "%d", 42);
  expect("-42", "%i", -42);
  expect("+42", "%+d", 42);
  expect(" 42", "% d", 42);
  expect("-2147483648", "%d", INT_MIN);
  expect("4294967295", "%u", UINT_MAX);
  expect("00042", "%05d", 42);
  expect("-0042", "%05d", -42);
  expect("42   |", "%-5d|", 42);
  expect("  042", "%5.3d", 42);
  expect("", "%.0d", 0);
  expect("    ", "%4.0d", 0);
  expect("0", "%#.0o", 0);
  expect("0x2a", "%#x", 42);
  expect("0X2A", "%#X", 42);
  expect("0", "%#x", 0);
  expect("052", "%#o", 42);
  expect("0x0000002a", "%#010x", 42);
  expect("ffffffff", "%x", -1);
  expect("ff", "%hhx", 255 + 256);
  expect("-1", "%hhd", 255);
  expect("-32768", "%hd", 32768);
  expect("18446744073709551615", "%lu", ULONG_MAX);
  expect("-9223372036854775808", "%lld", LLONG_MIN);
  expect("1777777777777777777777", "%llo", ULLONG_MAX);
  expect("ffffffffffffffff", "%jx", (uintmax_t)-1);
  expect("123456789012", "%zu", (size_t)123456789012ULL);
  expect("-5", "%td", (ptrdiff_t)-5);
  expect("     hello", "%10s", "hello");
  expect("hello     |", "%-10s|", "hello");
  expect("hel", "%.3s", "hello");
  expect("   he", "%*.*s", 5, 2, "hello");
  expect("he   |", "%*.*s|", -5, 2, "hello");
  expect("(null)", "%s", OPAQUE((char *)NULL));
  expect("A", "%c", 'A');
  expect("  A", "%3c", 'A');
  expect("%", "%%");
  expect("(nil)", "%p", (void *)NULL);
  expect("0x1234", "%p", (void *)0x1234);
  expect("b a", "%2$s %1$s", "a", "b");
  expect("  7", "%1$*2$d", 7, 3);
  expect("+0", "%+.1d", 0);
}

static void truncation(void) {
  char small[8];
  memset(small, 'x', sizeof small);
  CHECK_EQ(snprintf(small, OPAQUE(sizeof small), "%s", "abcdefghijkl"), 12);
  CHECK_STR(small, "abcdefg");
  CHECK_EQ(snprintf(small, OPAQUE((size_t)1), "%d", 12345), 5);
  CHECK_EQ(small[0], '\0');
  CHECK_EQ(snprintf(NULL, 0, "%lld", LLONG_MIN), 20);
  int written = 0, later = 0;
  char text[64];
  snprintf(text, sizeof text, "abc%ndef%hn", &written, (short *)&later);
  CHECK_EQ(written, 3);
  CHECK_EQ((short)later, 6);
  char *allocated = NULL;
  CHECK_EQ(asprintf(&allocated, "%0*d", 100, 7), 100);
  CHECK(allocated != NULL && allocated[0] == '0' && allocated[99] == '7');
  free(allocated);
}

static void print_with(int (*print)(const char *, ...), const char *name) {
  print("%-8s|%5d|%-5d|%05d|%+5d|% 5d|%5.3d|%-+7.4d|\n", name, 123, 123, 123, 123, 123, 123, -123);
}

static int printf_via_vsnprintf(const char *format, ...) {
  char text[256];
  va_list args;
  va_start(args, format);
  const int n = vsnprintf(text, sizeof text, format, args);
  va_end(args);
  fputs(text, stdout);
  return n;
}

static void table(void) {
  static const long long values[] = {0,
                                     1,
                                     -1,
                                     7,
                                     8,
                                     9,
                                     10,
                                     15,
                                     16,
                                     100,
                                     255,
                                     256,
                                     32767,
                                     -32768,
                                     65535,
                                     2147483647LL,
                                     -2147483648LL,
                                     4294967295LL,
                                     1LL << 40,
                                     LLONG_MAX,
                                     LLONG_MIN};
  static const char *const formats[] = {"%lld",      "%llu",  "%llo",  "%llx",    "%llX",     "%#llo",
                                        "%#llx",     "%+lld", "% lld", "%022lld", "%-22lld|", "%.25lld",
                                        "%25.20llx", "%hhd",  "%hu",   "%d"};
  for (size_t f = 0; f < sizeof formats / sizeof formats[0]; f++) {
    printf("%-10s", formats[f]);
    for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
      putchar(' ');
      if (strstr(formats[f], "ll")) {
        printf(formats[f], values[v]);
      } else {
        printf(formats[f], (int)values[v]);
      }
    }
    putchar('\n');
  }
  for (int c = 32; c < 127; c++) putchar(c);
  putchar('\n');
  printf("[%c][%-3c][%3c][%.0s][%.1s][%-6.2s][%6.8s]\n", 'x', 'y', 'z', "gone", "kept", "left", "right");
  print_with(printf, "printf");
  print_with(printf_via_vsnprintf, "vsnprint");
  fflush(stdout);
  /* dprintf writes straight to the descriptor: stdout was flushed first so the order is kept. */
  dprintf(STDOUT_FILENO, "%-8s|%5d|%-5d|%05d|\n", "dprintf", 123, 123, 123);
  fprintf(stderr, "%-8s|%5d|%#x|%s\n", "stderr", 123, 255, "to the other stream");
}

int main(void) {
  known();
  truncation();
  table();
  return finish();
}
