// guest-levels: O0 O2 O3-power9
/* 128-bit arithmetic: the full 64x64->128 product, unsigned (mulld/mulhdu) and signed (mulhd),
 * checked against schoolbook multiplication in 32-bit limbs; 128x128 products, shifts, compares,
 * division and remainder through libgcc, and 128-bit numbers printed in decimal. */
#include "check.h"
#include <inttypes.h>

typedef unsigned __int128 u128;
typedef __int128 s128;

static u128 make_u128(uint64_t high, uint64_t low) { return (u128)high << 64 | low; }

/* The reference: 64x64 -> 128 from 32-bit halves, without any 128-bit type. */
static void schoolbook(uint64_t a, uint64_t b, uint64_t *high, uint64_t *low) {
  const uint64_t a0 = (uint32_t)a, a1 = a >> 32, b0 = (uint32_t)b, b1 = b >> 32;
  const uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const uint64_t middle = (p00 >> 32) + (uint32_t)p01 + (uint32_t)p10;
  *low = (middle << 32) | (uint32_t)p00;
  *high = p11 + (p01 >> 32) + (p10 >> 32) + (middle >> 32);
}

static void print_magnitude(const char *label, const char *sign, u128 x) {
  char digits[48];
  int n = 0;
  do {
    digits[n++] = (char)('0' + (int)(x % 10));
    x /= 10;
  } while (x);
  printf("%s %s", label, sign);
  while (n) putchar(digits[--n]);
  putchar('\n');
}

static void print_u128(const char *label, u128 x) { print_magnitude(label, "", x); }

/* The magnitude of the most negative value only fits unsigned. */
static void print_s128(const char *label, s128 x) {
  print_magnitude(label, x < 0 ? "-" : "", x < 0 ? -(u128)x : (u128)x);
}

static uint64_t mulhi_unsigned(uint64_t a, uint64_t b) { return (uint64_t)((u128)a * b >> 64); }
static int64_t mulhi_signed(int64_t a, int64_t b) { return (int64_t)((s128)a * b >> 64); }

int main(void) {
  static const uint64_t edges[] = {0,
                                   1,
                                   2,
                                   3,
                                   0xffffffffULL,
                                   0x100000000ULL,
                                   0x7fffffffffffffffULL,
                                   0x8000000000000000ULL,
                                   0xffffffffffffffffULL,
                                   0xfffffffffffffffeULL,
                                   0x123456789abcdef0ULL,
                                   0xdeadbeefcafebabeULL};
  const size_t edge_count = sizeof edges / sizeof edges[0];
  uint64_t digest = FNV_INIT;
  rng_seed(128);
  for (int n = 0; n < 3000; n++) {
    const uint64_t a = OPAQUE(n < 144 ? edges[n / 12 % edge_count] : rng_next() >> rng_below(64));
    const uint64_t b = OPAQUE(n < 144 ? edges[n % 12] : rng_next() >> rng_below(64));
    uint64_t high, low;
    schoolbook(a, b, &high, &low);
    const u128 product = (u128)a * b;
    CHECK_EQ((uint64_t)(product >> 64), high);
    CHECK_EQ((uint64_t)product, low);
    CHECK_EQ(mulhi_unsigned(a, b), high);
    CHECK_EQ(a * b, low);
    /* Signed high part from the unsigned one: subtract b if a < 0 and a if b < 0 (mod 2^64). */
    const uint64_t signed_high = high - ((int64_t)a < 0 ? b : 0) - ((int64_t)b < 0 ? a : 0);
    CHECK_EQ((uint64_t)mulhi_signed((int64_t)a, (int64_t)b), signed_high);
    CHECK_EQ((uint64_t)((s128)(int64_t)a * (int64_t)b >> 64), signed_high);
    digest = fnv1a_u64(fnv1a_u64(digest, high), low);
    digest = fnv1a_u64(digest, signed_high);
    /* Division back: product / b == a when b != 0, with a zero remainder. */
    if (b != 0) {
      CHECK(product / b == a);
      CHECK(product % b == 0);
      const u128 dividend = product + (b - 1);
      CHECK(dividend / b == a);
      CHECK_EQ((uint64_t)(dividend % b), b - 1);
    }
    /* 128x128 truncated product and 128-bit shifts. */
    const u128 x = make_u128(a, b), y = make_u128(b ^ 0x5555555555555555ULL, a + 7);
    const u128 z = x * y;
    CHECK(z == y * x);
    CHECK((x << 17 >> 17) == (x & (~(u128)0 >> 17)));
    CHECK((s128)x >> 127 == ((int64_t)a < 0 ? (s128)-1 : 0));
    digest = fnv1a_u64(fnv1a_u64(digest, (uint64_t)(z >> 64)), (uint64_t)z);
    if (y != 0) {
      const u128 q = x / y, r = x % y;
      CHECK(q * y + r == x);
      CHECK(r < y);
      digest = fnv1a_u64(fnv1a_u64(digest, (uint64_t)q), (uint64_t)r);
    }
    const s128 sx = (s128)x, sy = (s128)make_u128(b, a | 1);
    const s128 sq = sx / sy, sr = sx % sy;
    CHECK(sq * sy + sr == sx);
    CHECK(sr == 0 || (sr < 0) == (sx < 0));
    digest = fnv1a_u64(fnv1a_u64(digest, (uint64_t)sq), (uint64_t)sr);
  }
  printf("products fnv=%016" PRIx64 "\n", digest);

  const u128 max = ~(u128)0;
  print_u128("max", max);
  print_s128("signed max", (s128)(max >> 1));
  print_s128("signed min", -(s128)(max >> 1) - 1);
  const u128 square = (u128)OPAQUE(0xffffffffffffffffULL) * OPAQUE(0xffffffffffffffffULL);
  print_u128("(2^64-1)^2", square);
  CHECK(square == make_u128(0xfffffffffffffffeULL, 1));
  CHECK(max / OPAQUE((u128)10) == make_u128(0x1999999999999999ULL, 0x9999999999999999ULL));
  CHECK_EQ((uint64_t)(max % OPAQUE((u128)10)), 5);
  u128 factorial = 1;
  for (unsigned k = 1; k <= 34; k++) factorial *= OPAQUE(k);
  print_u128("34!", factorial);
  CHECK(factorial / ((u128)10000000000ULL * 10000000000ULL) == 2952327990396041408ULL);
  s128 power = 1;
  for (int k = 0; k < 40; k++) power *= OPAQUE(-7);
  print_s128("(-7)^40", power);
  print_s128("-(7^39)", power / OPAQUE(-7));
  CHECK(power / -7 / -7 * 49 == power);
  return finish();
}
