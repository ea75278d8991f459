// guest-levels: O0 O2 O3-power9
/* Data layout: bit-fields of every width, signed and unsigned, read back with sign extension and
 * written without disturbing their neighbours; packed structures whose fields sit at unaligned
 * addresses (loads and stores of 2, 4 and 8 bytes at every misalignment); little-endian byte order
 * seen through unions; struct assignment and comparison of large structures; and sizeof/offsetof of
 * the ABI's layouts. */
#include "check.h"
#include <inttypes.h>
#include <stddef.h>

struct fields {
  unsigned a : 1;
  signed b : 3;
  unsigned c : 7;
  signed d : 13;
  unsigned e : 8;
  unsigned long long f : 37;
  signed long long g : 27;
  unsigned h : 2;
};

struct __attribute__((packed)) misaligned {
  uint8_t tag;
  uint16_t half;
  uint32_t word;
  uint64_t doubleword;
  double real;
  float single;
};

union bytes {
  uint64_t doubleword;
  uint32_t words[2];
  uint16_t halves[4];
  uint8_t octets[8];
  double real;
};

struct large {
  int64_t values[33];
  char name[17];
};

static void bit_fields(void) {
  struct fields f;
  memset(&f, 0, sizeof f);
  uint64_t digest = FNV_INIT;
  rng_seed(31);
  for (int n = 0; n < 2000; n++) {
    const uint64_t r = rng_next();
    switch (n % 8) {
      case 0: f.a = (unsigned)r & 1; break;
      case 1: f.b = (int)(r % 8) - 4; break;
      case 2: f.c = (unsigned)r & 0x7f; break;
      case 3: f.d = (int)(r % 8192) - 4096; break;
      case 4: f.e = (unsigned)r & 0xff; break;
      case 5: f.f = r & ((1ULL << 37) - 1); break;
      case 6: f.g = (long long)(r % (1ULL << 27)) - (1LL << 26); break;
      default: f.h = (unsigned)r & 3; break;
    }
    digest = fnv1a(digest, &f, sizeof f);
  }
  printf("bit-fields: a=%u b=%d c=%u d=%d e=%u f=%llu g=%lld h=%u fnv=%016" PRIx64 "\n", f.a, f.b, f.c, f.d, f.e,
         (unsigned long long)f.f, (long long)f.g, f.h, digest);
  f.b = OPAQUE(-4);
  CHECK_EQ(f.b, (uint64_t)-4LL);
  f.b = OPAQUE(3);
  CHECK_EQ(f.b, 3);
  f.d = OPAQUE(-4096);
  CHECK_EQ(f.d, (uint64_t)-4096LL);
  f.g = OPAQUE(-1LL);
  CHECK_EQ(f.g, (uint64_t)-1LL);
  f.f = OPAQUE((1ULL << 37) - 1);
  CHECK_EQ(f.f, (1ULL << 37) - 1);
  f.c = OPAQUE(0x7fu);
  f.e = 0;
  CHECK_EQ(f.c, 0x7f);
  f.c = OPAQUE(0x80u); /* truncated to 7 bits */
  CHECK_EQ(f.c, 0);
  printf("sizeof(struct fields) %zu\n", sizeof(struct fields));
}

static void unaligned(void) {
  static unsigned char buffer[64 + 32];
  uint64_t digest = FNV_INIT;
  for (int offset = 0; offset < 16; offset++) {
    for (size_t i = 0; i < sizeof buffer; i++) buffer[i] = (unsigned char)(i * 37 + offset);
    unsigned char *const p = buffer + offset;
    uint16_t h;
    uint32_t w;
    uint64_t d;
    memcpy(&h, p + 1, 2);
    memcpy(&w, p + 3, 4);
    memcpy(&d, p + 5, 8);
    /* Little-endian: the byte at the lowest address is the least significant. */
    CHECK_EQ(h, (uint16_t)(p[1] | p[2] << 8));
    CHECK_EQ(w, (uint32_t)p[3] | (uint32_t)p[4] << 8 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 24);
    uint64_t expected = 0;
    for (int k = 7; k >= 0; k--) expected = expected << 8 | p[5 + k];
    CHECK_EQ(d, expected);
    struct misaligned *const m = (struct misaligned *)(void *)p;
    m->half = (uint16_t)(0xbeef + offset);
    m->word = 0xdeadbeefu ^ (uint32_t)offset;
    m->doubleword = 0x0123456789abcdefULL * (uint64_t)(offset + 1);
    m->real = 1.0 / (offset + 3);
    m->single = (float)offset * 0.5f;
    CHECK_EQ(m->half, 0xbeef + offset);
    CHECK_EQ(m->word, 0xdeadbeefu ^ (uint32_t)offset);
    CHECK_EQ(m->doubleword, 0x0123456789abcdefULL * (uint64_t)(offset + 1));
    CHECK(m->real == 1.0 / (offset + 3));
    CHECK(m->single == (float)offset * 0.5f);
    CHECK_EQ(p[0], (unsigned char)(offset * 37 + offset)); /* the tag byte is untouched */
    digest = fnv1a(digest, buffer, sizeof buffer);
  }
  printf("unaligned fnv=%016" PRIx64 "\n", digest);
  CHECK_EQ(sizeof(struct misaligned), 27);
  CHECK_EQ(offsetof(struct misaligned, word), 3);
  CHECK_EQ(offsetof(struct misaligned, real), 15);
}

static void byte_order(void) {
  union bytes u;
  u.doubleword = OPAQUE(0x0102030405060708ULL);
  CHECK_EQ(u.octets[0], 0x08);
  CHECK_EQ(u.octets[7], 0x01);
  CHECK_EQ(u.halves[0], 0x0708);
  CHECK_EQ(u.words[1], 0x01020304);
  u.real = OPAQUE(-2.0);
  CHECK_EQ(u.doubleword, 0xc000000000000000ULL);
  CHECK_EQ(u.octets[7], 0xc0);
  printf("byte order: %02x %02x %02x %02x\n", u.octets[7], u.octets[6], u.octets[1], u.octets[0]);
}

static struct large make_large(int seed) {
  struct large l;
  memset(&l, 0, sizeof l);
  for (int i = 0; i < 33; i++) l.values[i] = (int64_t)seed * i - 1000;
  snprintf(l.name, sizeof l.name, "large-%d", seed);
  return l;
}

static void structures(void) {
  struct large a = make_large(OPAQUE(7));
  struct large b = a;
  CHECK(memcmp(&a, &b, sizeof a) == 0);
  b.values[32] = 1;
  CHECK(memcmp(&a, &b, sizeof a) != 0);
  CHECK_STR(b.name, "large-7");
  struct large array[4];
  for (int i = 0; i < 4; i++) array[i] = make_large(i);
  struct large swap = array[0];
  array[0] = array[3];
  array[3] = swap;
  CHECK_EQ(array[0].values[1], 3 - 1000);
  CHECK_STR(array[3].name, "large-0");
  const struct fields designated = {.d = -7, .h = 2, .a = 1};
  CHECK(designated.d == -7 && designated.h == 2 && designated.a == 1 && designated.c == 0);
  CHECK_EQ(sizeof(long double), 16);
  CHECK_EQ(_Alignof(long double), 16);
  CHECK_EQ(_Alignof(int64_t), 8);
  CHECK_EQ(sizeof(void *), 8);
  CHECK_EQ(sizeof(long), 8);
  CHECK_EQ(sizeof(wchar_t), 4);
}

int main(void) {
  bit_fields();
  unaligned();
  byte_order();
  structures();
  return finish();
}
