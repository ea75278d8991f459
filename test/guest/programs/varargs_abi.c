// guest-levels: O0 O2 O3-power9
/* The ELFv2 calling convention: variadic functions reading every type (va_arg of char-promoted ints,
 * longs, doubles, long doubles, pointers, structs; va_copy), more arguments than registers (spilled to
 * the parameter save area), mixed integer and floating arguments, structures of every size 1..40 passed
 * and returned by value, homogeneous float and double aggregates (passed in FPRs), and vector arguments. */
#include "check.h"
#include <altivec.h>
#include <inttypes.h>
#include <stdarg.h>

struct small {
  char c;
  short s;
};
struct big {
  int64_t values[5];
};

static uint64_t mix(uint64_t digest, uint64_t value) { return fnv1a_u64(digest, value); }

/* Reads the arguments `format` names, one letter each: i int, l long, d double, L long double,
 * p string, s struct small, b struct big; returns a digest of what it read. */
static uint64_t read_varargs(const char *format, ...) {
  va_list args, again;
  va_start(args, format);
  va_copy(again, args);
  uint64_t digest = FNV_INIT;
  for (const char *f = format; *f; f++) {
    switch (*f) {
      case 'i': digest = mix(digest, (uint64_t)(int64_t)va_arg(args, int)); break;
      case 'l': digest = mix(digest, (uint64_t)va_arg(args, long)); break;
      case 'd': {
        const double d = va_arg(args, double);
        uint64_t u;
        memcpy(&u, &d, 8);
        digest = mix(digest, u);
        break;
      }
      case 'L': digest = mix(digest, (uint64_t)(int64_t)(va_arg(args, long double) * 1000)); break;
      case 'p': digest = mix(digest, (uint64_t)strlen(va_arg(args, const char *))); break;
      case 's': {
        const struct small s = va_arg(args, struct small);
        digest = mix(digest, (uint64_t)(s.c + s.s));
        break;
      }
      case 'b': {
        const struct big b = va_arg(args, struct big);
        digest = mix(digest, (uint64_t)(b.values[0] + b.values[4]));
        break;
      }
    }
  }
  va_end(args);
  /* The copy walks the same arguments again. */
  uint64_t count = 0;
  for (const char *f = format; *f; f++) {
    if (*f == 'i')
      count += (uint64_t)va_arg(again, int);
    else if (*f == 'l')
      count += (uint64_t)va_arg(again, long);
    else if (*f == 'd')
      count += (uint64_t)va_arg(again, double);
    else if (*f == 'L')
      count += (uint64_t)va_arg(again, long double);
    else if (*f == 'p')
      count += strlen(va_arg(again, const char *));
    else if (*f == 's')
      count += (uint64_t)va_arg(again, struct small).s;
    else if (*f == 'b')
      count += (uint64_t)va_arg(again, struct big).values[2];
  }
  va_end(again);
  return digest ^ count << 1;
}

static long sum_ints(int count, ...) {
  va_list args;
  va_start(args, count);
  long total = 0;
  for (int i = 0; i < count; i++) total += va_arg(args, int);
  va_end(args);
  return total;
}

/* 10 integer and 16 floating arguments: r3-r10 and f1-f13 run out, the rest go on the stack. */
static __attribute__((noinline)) double many_arguments(int a0, double d0, long a1, double d1, int a2, double d2,
                                                       long a3, double d3, int a4, double d4, long a5, double d5,
                                                       int a6, double d6, long a7, double d7, int a8, double d8,
                                                       long a9, double d9, double d10, double d11, double d12,
                                                       double d13, double d14, double d15, float f16) {
  return (double)(a0 + a1 * 2 + a2 * 3 + a3 * 4 + a4 * 5 + a5 * 6 + a6 * 7 + a7 * 8 + a8 * 9 + a9 * 10) + d0 + d1 * 2 +
         d2 * 3 + d3 * 4 + d4 * 5 + d5 * 6 + d6 * 7 + d7 * 8 + d8 * 9 + d9 * 10 + d10 * 11 + d11 * 12 + d12 * 13 +
         d13 * 14 + d14 * 15 + d15 * 16 + (double)f16 * 17;
}

/* Structures of every size from 1 to 40 bytes, passed and returned by value. */
#define SIZED(n)                                                                                   \
  struct sized_##n {                                                                               \
    unsigned char bytes[n];                                                                        \
  };                                                                                               \
  static __attribute__((noinline)) struct sized_##n transform_##n(struct sized_##n in, int salt) { \
    for (int i = 0; i < n; i++) in.bytes[i] = (unsigned char)(in.bytes[i] * 3 + salt + i);         \
    return in;                                                                                     \
  }                                                                                                \
  static uint64_t exercise_##n(void) {                                                             \
    struct sized_##n s;                                                                            \
    for (int i = 0; i < n; i++) s.bytes[i] = (unsigned char)(i * 7 + n);                           \
    const struct sized_##n t = transform_##n(s, OPAQUE(n));                                        \
    int ok = 1;                                                                                    \
    for (int i = 0; i < n; i++) ok &= t.bytes[i] == (unsigned char)(s.bytes[i] * 3 + n + i);       \
    CHECK(ok);                                                                                     \
    return fnv1a(FNV_INIT, t.bytes, n);                                                            \
  }
// clang-format off
#define SIZES(M) \
  M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15) M(16) M(17) M(18) M(19) M(20) \
  M(21) M(22) M(23) M(24) M(25) M(26) M(27) M(28) M(29) M(30) M(31) M(32) M(33) M(34) M(35) M(36) M(37) M(38) M(39) M(40)
// clang-format on
SIZES(SIZED)

/* Homogeneous aggregates: up to eight floats or doubles travel in floating-point registers. */
struct four_floats {
  float x, y, z, w;
};
struct eight_doubles {
  double v[8];
};
struct two_doubles {
  double re, im;
};

static __attribute__((noinline)) struct four_floats scale4(struct four_floats a, float k) {
  return (struct four_floats){a.x * k, a.y * k, a.z * k, a.w * k};
}
static __attribute__((noinline)) struct eight_doubles reverse8(struct eight_doubles a) {
  struct eight_doubles r;
  for (int i = 0; i < 8; i++) r.v[i] = a.v[7 - i];
  return r;
}
static __attribute__((noinline)) struct two_doubles complex_multiply(struct two_doubles a, struct two_doubles b) {
  return (struct two_doubles){a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
}

static __attribute__((noinline)) vector signed int vector_mix(vector signed int a, vector signed int b, int k) {
  return vec_add(vec_mul(a, vec_splats(k)), b);
}

int main(void) {
  const struct small small = {3, 300};
  const struct big big = {{1, 2, 3, 4, 5}};
  const uint64_t v1 = read_varargs("ildLpsb", -5, -6L, 2.5, 3.25L, "four", small, big);
  const uint64_t v2 = read_varargs("dddddddddddddddi", 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0,
                                   13.0, 14.0, 15.0, 99);
  const uint64_t v3 = read_varargs("iiiiiiiiiiiilL", 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13L, 14.5L);
  printf("varargs %016" PRIx64 " %016" PRIx64 " %016" PRIx64 "\n", v1, v2, v3);
  CHECK_EQ(sum_ints(0), 0);
  CHECK_EQ(sum_ints(12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, -12), 54);
  const signed char c = OPAQUE((signed char)-3);
  const short s = OPAQUE((short)-300);
  CHECK_EQ(sum_ints(2, c, s), (uint64_t)-303LL); /* signed char and short promote to int */
  const char plain = OPAQUE((char)-3);
  CHECK_EQ(sum_ints(1, plain), 253); /* plain char is unsigned in the POWER ABI */
  const double many = many_arguments(1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 5.5, 6, 6.5, 7, 7.5, 8, 8.5, 9, 9.5, 10, 10.5,
                                     11.5, 12.5, 13.5, 14.5, 15.5, 16.5, 17.5f);
  printf("many arguments %.17g\n", many);
  CHECK(many == 385.0 + 1.5 * 1 + 2.5 * 2 + 3.5 * 3 + 4.5 * 4 + 5.5 * 5 + 6.5 * 6 + 7.5 * 7 + 8.5 * 8 + 9.5 * 9 +
                    10.5 * 10 + 11.5 * 11 + 12.5 * 12 + 13.5 * 13 + 14.5 * 14 + 15.5 * 15 + 16.5 * 16 + 17.5 * 17);
  uint64_t digest = FNV_INIT;
#define RUN_SIZED(n) digest = mix(digest, exercise_##n());
  SIZES(RUN_SIZED)
#undef RUN_SIZED
  printf("structs by value fnv=%016" PRIx64 "\n", digest);
  const struct four_floats f = scale4((struct four_floats){1, 2, 3, 4}, OPAQUE(0.5f));
  CHECK(f.x == 0.5f && f.y == 1 && f.z == 1.5f && f.w == 2);
  struct eight_doubles e;
  for (int i = 0; i < 8; i++) e.v[i] = i * 1.25;
  const struct eight_doubles r = reverse8(e);
  CHECK(r.v[0] == 8.75 && r.v[7] == 0);
  const struct two_doubles product = complex_multiply((struct two_doubles){1, 2}, (struct two_doubles){3, -4});
  CHECK(product.re == 11 && product.im == 2);
  const vector signed int mixed =
      vector_mix((vector signed int){1, 2, 3, 4}, (vector signed int){10, 20, 30, 40}, OPAQUE(3));
  printf("vector %d %d %d %d\n", mixed[0], mixed[1], mixed[2], mixed[3]);
  CHECK(mixed[0] == 13 && mixed[1] == 26 && mixed[2] == 39 && mixed[3] == 52);
  return finish();
}
