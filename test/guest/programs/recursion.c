// guest-levels: O0 O2 O3-power9
/* Deep recursion: 10,000 frames of plain (non-tail) recursion, 50,000 frames of a small one, mutual
 * recursion, recursion with 1 KiB frames and with variable-length arrays that grow the stack by
 * several MiB (the kernel must extend the stack region on demand), Ackermann's function, and a
 * recursive-descent expression evaluator. */
#include "check.h"
#include <inttypes.h>

/* Non-tail: the addition after the call keeps every frame alive. */
static __attribute__((noinline)) uint64_t sum_to(uint64_t n) { return n == 0 ? 0 : n + sum_to(n - 1); }

static __attribute__((noinline)) int depth_of(int n, volatile int *deepest) {
  if (n > *deepest) *deepest = n;
  if (n >= 50000) return n;
  const int result = depth_of(n + 1, deepest);
  return result + (*deepest < n); /* the volatile read after the call keeps this from being a tail call */
}

static int is_odd(unsigned n);
static __attribute__((noinline)) int is_even(unsigned n) { return n == 0 ? 1 : is_odd(n - 1); }
static __attribute__((noinline)) int is_odd(unsigned n) { return n == 0 ? 0 : is_even(n - 1); }

/* A 1 KiB frame per level, filled and checked after the recursive call returns. */
static __attribute__((noinline)) uint64_t big_frames(int n) {
  volatile unsigned char frame[1024];
  for (int i = 0; i < 1024; i++) frame[i] = (unsigned char)(n + i);
  const uint64_t below = n == 0 ? 0 : big_frames(n - 1);
  uint64_t sum = 0;
  for (int i = 0; i < 1024; i += 97) sum += frame[i];
  return below + sum;
}

/* Variable-length arrays: each level takes n*64 bytes more than the one before. */
static __attribute__((noinline)) uint64_t growing_frames(int n, int levels) {
  const size_t size = (size_t)n * 64 + 16;
  volatile unsigned char area[size];
  area[0] = (unsigned char)n;
  area[size - 1] = (unsigned char)(n * 3);
  const uint64_t below = n == levels ? 0 : growing_frames(n + 1, levels);
  return below + area[0] + area[size - 1];
}

static uint64_t ackermann(uint64_t m, uint64_t n) {
  if (m == 0) return n + 1;
  if (n == 0) return ackermann(m - 1, 1);
  return ackermann(m - 1, ackermann(m, n - 1));
}

/* expression := term (('+'|'-') term)*; term := factor (('*'|'/') factor)*; factor := number | '(' expr ')' | '-'
 * factor */
static const char *cursor;
static long expression(void);

static long factor(void) {
  if (*cursor == '(') {
    cursor++;
    const long value = expression();
    cursor++; /* ')' */
    return value;
  }
  if (*cursor == '-') {
    cursor++;
    return -factor();
  }
  long value = 0;
  while (*cursor >= '0' && *cursor <= '9') value = value * 10 + (*cursor++ - '0');
  return value;
}

static long term(void) {
  long value = factor();
  while (*cursor == '*' || *cursor == '/') {
    const char op = *cursor++;
    const long right = factor();
    value = op == '*' ? value * right : value / right;
  }
  return value;
}

static long expression(void) {
  long value = term();
  while (*cursor == '+' || *cursor == '-') {
    const char op = *cursor++;
    const long right = term();
    value = op == '+' ? value + right : value - right;
  }
  return value;
}

static long evaluate(const char *text) {
  cursor = text;
  return expression();
}

int main(void) {
  CHECK_EQ(sum_to(OPAQUE(10000)), 50005000);
  printf("sum_to(10000) = %" PRIu64 "\n", sum_to(OPAQUE(10000)));
  volatile int deepest = 0;
  CHECK_EQ(depth_of(OPAQUE(0), &deepest), 50000);
  CHECK_EQ(deepest, 50000);
  CHECK(is_even(OPAQUE(10000u)));
  CHECK(is_odd(OPAQUE(9999u)));
  CHECK(!is_odd(OPAQUE(20000u)));
  uint64_t expected = 0;
  for (int n = 0; n <= 3000; n++) {
    for (int i = 0; i < 1024; i += 97) expected += (unsigned char)(n + i);
  }
  const uint64_t frames = big_frames(OPAQUE(3000)); /* about 3 MiB of stack */
  printf("big_frames(3000) = %" PRIu64 "\n", frames);
  CHECK_EQ(frames, expected);
  expected = 0;
  for (int n = 1; n <= 300; n++) expected += (unsigned char)n + (unsigned char)(n * 3);
  const uint64_t grown = growing_frames(1, OPAQUE(300)); /* about 2.8 MiB of arrays */
  printf("growing_frames(300) = %" PRIu64 "\n", grown);
  CHECK_EQ(grown, expected);
  printf("ackermann(2, 300) = %" PRIu64 ", ackermann(3, 6) = %" PRIu64 "\n", ackermann(2, OPAQUE(300)),
         ackermann(3, OPAQUE(6)));
  CHECK_EQ(ackermann(2, OPAQUE(300)), 603);
  CHECK_EQ(ackermann(3, OPAQUE(6)), 509);
  static char nested[20000];
  size_t length = 0;
  for (int i = 0; i < 3000; i++) nested[length++] = '(';
  nested[length++] = '7';
  for (int i = 0; i < 3000; i++) {
    nested[length++] = i % 2 ? '+' : '*';
    nested[length++] = '1';
    nested[length++] = ')';
  }
  nested[length] = '\0';
  const long deep_value = evaluate(nested);
  printf("3000 nested parentheses evaluate to %ld\n", deep_value);
  CHECK_EQ(deep_value, 1507);
  CHECK_EQ(evaluate("2*(3+4)-10/(1+1)"), 9);
  CHECK_EQ(evaluate("-(-(-5))*-3"), 15);
  CHECK_EQ(evaluate("100-2-3-4"), 91);
  return finish();
}
