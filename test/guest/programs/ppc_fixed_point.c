// guest-levels: O0 O2 O3-power9
/* Fixed-point instructions the compiler rarely picks, reached through inline assembly: carrying
 * and extended arithmetic (addc/adde/addme/addze/subfc/subfe) with XER[CA]; overflow forms
 * (addo/subfo/mulldo/divdo) with XER[OV,SO] and CR0; shifts by counts of 0..127 (slw/srw/sraw/sld/
 * srd/srad, which give 0 or the sign at counts >= the width); rotate-and-mask forms; cmpb, popcntb,
 * prtyd, bpermd, isel, mfocrf; and on POWER9 (-mcpu=power9) modsd/modud/modsw/moduw, cnttzd, setb,
 * extswsli, maddld/maddhd/maddhdu and cmprb/cmpeqb. */
#include "check.h"
#include <inttypes.h>

static const uint64_t values[] = {0,
                                  1,
                                  2,
                                  0x7f,
                                  0x80,
                                  0xffff,
                                  0x7fffffff,
                                  0x80000000,
                                  0xffffffff,
                                  0x100000000ULL,
                                  0x7fffffffffffffffULL,
                                  0x8000000000000000ULL,
                                  0xffffffffffffffffULL,
                                  0xfffffffffffffffeULL,
                                  0x0123456789abcdefULL,
                                  0xfedcba9876543210ULL,
                                  0x00ff00ff00ff00ffULL,
                                  0x8080808080808080ULL};
#define VALUE_COUNT (sizeof values / sizeof values[0])

static uint64_t read_xer(void) {
  uint64_t xer;
  __asm__ volatile("mfxer %0" : "=r"(xer));
  return xer;
}

static void clear_xer(void) { __asm__ volatile("mtxer %0" ::"r"(0ULL)); }

/* XER's SO, OV and CA bits (and OV32/CA32 on ISA 3.0) as the low bits of a small number. */
static unsigned xer_flags(uint64_t xer) {
  return (unsigned)((xer >> 31 & 1) << 0 | (xer >> 30 & 1) << 1 | (xer >> 29 & 1) << 2 | (xer >> 19 & 1) << 3 |
                    (xer >> 18 & 1) << 4);
}

static void carrying(void) {
  uint64_t digest_carry = FNV_INIT;
  for (size_t i = 0; i < VALUE_COUNT; i++) {
    for (size_t j = 0; j < VALUE_COUNT; j++) {
      const uint64_t a = OPAQUE(values[i]), b = OPAQUE(values[j]);
      uint64_t r, xer;
      clear_xer();
      __asm__ volatile("addc %0,%1,%2" : "=r"(r) : "r"(a), "r"(b) : "xer");
      xer = read_xer();
      CHECK_EQ(r, a + b);
      CHECK_EQ(xer >> 29 & 1, r < a); /* CA is the carry out of bit 0 */
      digest_carry = fnv1a_u64(fnv1a_u64(digest_carry, r), xer_flags(xer));
      /* adde adds the carry in: with CA set first by a carrying add of all ones. */
      __asm__ volatile("addic %0,%1,-1\n\tadde %0,%2,%3" : "=&r"(r) : "r"(1ULL), "r"(a), "r"(b) : "xer");
      xer = read_xer();
      CHECK_EQ(r, a + b + 1);
      digest_carry = fnv1a_u64(fnv1a_u64(digest_carry, r), xer_flags(xer));
      clear_xer();
      __asm__ volatile("subfc %0,%1,%2" : "=r"(r) : "r"(b), "r"(a) : "xer"); /* a - b */
      xer = read_xer();
      CHECK_EQ(r, a - b);
      CHECK_EQ(xer >> 29 & 1, a >= b); /* CA is "no borrow" */
      digest_carry = fnv1a_u64(fnv1a_u64(digest_carry, r), xer_flags(xer));
      clear_xer();
      __asm__ volatile("subfe %0,%1,%2" : "=r"(r) : "r"(b), "r"(a) : "xer"); /* a + ~b + CA(0) */
      CHECK_EQ(r, a + ~b);
      digest_carry = fnv1a_u64(digest_carry, r);
      clear_xer();
      __asm__ volatile("addme %0,%1" : "=r"(r) : "r"(a) : "xer"); /* a + CA(0) - 1 */
      CHECK_EQ(r, a - 1);
      __asm__ volatile("addic %0,%1,-1\n\taddze %0,%2" : "=&r"(r) : "r"(1ULL), "r"(a) : "xer"); /* a + CA(1) */
      CHECK_EQ(r, a + 1);
      digest_carry = fnv1a_u64(digest_carry, r ^ read_xer());
    }
  }
  printf("carrying fnv=%016" PRIx64 "\n", digest_carry);
}

static void overflow_forms(void) {
  uint64_t digest_overflow = FNV_INIT;
  for (size_t i = 0; i < VALUE_COUNT; i++) {
    for (size_t j = 0; j < VALUE_COUNT; j++) {
      const int64_t a = (int64_t)OPAQUE(values[i]), b = (int64_t)OPAQUE(values[j]);
      int64_t r;
      uint64_t cr, xer;
      clear_xer();
      __asm__ volatile("addo. %0,%2,%3\n\tmfcr %1" : "=r"(r), "=r"(cr) : "r"(a), "r"(b) : "xer", "cr0");
      xer = read_xer();
      const int overflow = __builtin_add_overflow(a, b, &(int64_t){0});
      CHECK_EQ(xer >> 30 & 1, overflow);
      CHECK_EQ(xer >> 31 & 1, overflow); /* SO is sticky: set with OV */
      CHECK_EQ(cr >> 28 & 1, overflow);  /* CR0[SO] copies XER[SO] */
      CHECK_EQ(cr >> 31 & 1, r < 0);
      CHECK_EQ(cr >> 30 & 1, r > 0);
      CHECK_EQ(cr >> 29 & 1, r == 0);
      digest_overflow = fnv1a_u64(fnv1a_u64(digest_overflow, (uint64_t)r), xer_flags(xer) | (cr >> 28) << 8);
      clear_xer();
      __asm__ volatile("subfo %0,%1,%2" : "=r"(r) : "r"(b), "r"(a) : "xer");
      xer = read_xer();
      CHECK_EQ(xer >> 30 & 1, __builtin_sub_overflow(a, b, &(int64_t){0}));
      digest_overflow = fnv1a_u64(fnv1a_u64(digest_overflow, (uint64_t)r), xer_flags(xer));
      clear_xer();
      __asm__ volatile("mulldo %0,%1,%2" : "=r"(r) : "r"(a), "r"(b) : "xer");
      xer = read_xer();
      CHECK_EQ(xer >> 30 & 1, __builtin_mul_overflow(a, b, &(int64_t){0}));
      CHECK_EQ((uint64_t)r, (uint64_t)a * (uint64_t)b);
      digest_overflow = fnv1a_u64(fnv1a_u64(digest_overflow, (uint64_t)r), xer_flags(xer));
      if (b != 0 && !(a == INT64_MIN && b == -1)) {
        clear_xer();
        __asm__ volatile("divdo %0,%1,%2" : "=r"(r) : "r"(a), "r"(b) : "xer");
        CHECK_EQ(r, a / b);
        CHECK_EQ(read_xer() >> 30 & 1, 0);
        digest_overflow = fnv1a_u64(digest_overflow, (uint64_t)r);
      } else {
        /* The quotient is undefined, but OV must be set. */
        clear_xer();
        __asm__ volatile("divdo %0,%1,%2" : "=r"(r) : "r"(a), "r"(b) : "xer");
        CHECK_EQ(read_xer() >> 30 & 1, 1);
      }
      /* SO stays set until cleared, even after an operation that does not overflow. */
      __asm__ volatile("addo %0,%1,%2\n\taddo %0,%3,%3" : "=&r"(r) : "r"(INT64_MAX), "r"(1LL), "r"(0LL) : "xer");
      CHECK_EQ(read_xer() >> 30 & 3, 2);
    }
  }
  printf("overflow fnv=%016" PRIx64 "\n", digest_overflow);
}

static void shifts_beyond_width(void) {
  uint64_t digest_shift = FNV_INIT;
  for (size_t i = 0; i < VALUE_COUNT; i++) {
    const uint64_t x = OPAQUE(values[i]);
    for (uint64_t n = 0; n < 128; n++) {
      uint64_t slw, srw, sraw, sld, srd, srad, ca;
      __asm__ volatile("slw %0,%1,%2" : "=r"(slw) : "r"(x), "r"(n));
      __asm__ volatile("srw %0,%1,%2" : "=r"(srw) : "r"(x), "r"(n));
      clear_xer();
      __asm__ volatile("sraw %0,%1,%2" : "=r"(sraw) : "r"(x), "r"(n) : "xer");
      ca = read_xer() >> 29 & 1;
      __asm__ volatile("sld %0,%1,%2" : "=r"(sld) : "r"(x), "r"(n));
      __asm__ volatile("srd %0,%1,%2" : "=r"(srd) : "r"(x), "r"(n));
      clear_xer();
      __asm__ volatile("srad %0,%1,%2" : "=r"(srad) : "r"(x), "r"(n) : "xer");
      const uint64_t srad_ca = read_xer() >> 29 & 1;
      const unsigned w = n & 63; /* the 32-bit forms use six bits of the count, the 64-bit forms seven */
      CHECK_EQ(slw, w < 32 ? (uint32_t)(x << w) : 0);
      CHECK_EQ(srw, w < 32 ? (uint32_t)x >> w : 0);
      CHECK_EQ(sraw, (uint64_t)(int64_t)(w < 32 ? (int32_t)x >> w : (int32_t)x >> 31));
      CHECK_EQ(sld, n < 64 ? x << n : 0);
      CHECK_EQ(srd, n < 64 ? x >> n : 0);
      CHECK_EQ(srad, (uint64_t)(n < 64 ? (int64_t)x >> n : (int64_t)x >> 63));
      /* CA: set when a negative value shifts out one bits. */
      const uint64_t out32 = w >= 32 ? (uint32_t)x : (uint32_t)x & ((1ULL << w) - 1);
      const uint64_t out64 = n >= 64 ? x : x & ((1ULL << n) - 1);
      CHECK_EQ(ca, (int32_t)x < 0 && out32 != 0);
      CHECK_EQ(srad_ca, (int64_t)x < 0 && out64 != 0);
      digest_shift =
          fnv1a_u64(digest_shift, slw ^ srw << 1 ^ sraw << 2 ^ sld << 3 ^ srd << 4 ^ srad << 5 ^ ca ^ srad_ca << 1);
    }
  }
  printf("shifts fnv=%016" PRIx64 "\n", digest_shift);
}

static void bit_operations(void) {
  uint64_t digest_bits = FNV_INIT;
  for (size_t i = 0; i < VALUE_COUNT; i++) {
    for (size_t j = 0; j < VALUE_COUNT; j++) {
      const uint64_t a = OPAQUE(values[i]), b = OPAQUE(values[j]);
      uint64_t cmpb, rlwinm, rldicl, rldimi = b, rlwimi = b, rldcl, bpermd, isel;
      __asm__ volatile("cmpb %0,%1,%2" : "=r"(cmpb) : "r"(a), "r"(b));
      __asm__ volatile("rlwinm %0,%1,7,3,28" : "=r"(rlwinm) : "r"(a));
      __asm__ volatile("rldicl %0,%1,13,7" : "=r"(rldicl) : "r"(a));
      __asm__ volatile("rldimi %0,%1,17,23" : "+r"(rldimi) : "r"(a));
      __asm__ volatile("rlwimi %0,%1,5,10,20" : "+r"(rlwimi) : "r"(a));
      __asm__ volatile("rldcl %0,%1,%2,0" : "=r"(rldcl) : "r"(a), "r"(b));
      __asm__ volatile("bpermd %0,%1,%2"
                       : "=r"(bpermd)
                       : "r"(0x3f3e3d3c0f0e0100ULL ^ (b & 0x0707070707070707ULL)), "r"(a));
      __asm__ volatile("cmpd %2,%3\n\tisel %0,%2,%3,0" : "=r"(isel) : "0"(0ULL), "r"(a), "r"(b) : "cr0");
      uint64_t expected_cmpb = 0;
      for (int k = 0; k < 8; k++)
        if ((a >> 8 * k & 0xff) == (b >> 8 * k & 0xff)) expected_cmpb |= 0xffULL << 8 * k;
      CHECK_EQ(cmpb, expected_cmpb);
      CHECK_EQ(rldcl, b & 63 ? a << (b & 63) | a >> (64 - (b & 63)) : a);
      CHECK_EQ(rldicl, (a << 13 | a >> 51) & (~0ULL >> 7));
      CHECK_EQ(isel, (int64_t)a < (int64_t)b ? a : b);
      digest_bits = fnv1a_u64(digest_bits, cmpb ^ rlwinm << 1 ^ rldicl << 2 ^ rldimi << 3 ^ rlwimi << 4 ^ bpermd << 5);
    }
    const uint64_t a = OPAQUE(values[i]);
    uint64_t popcntb, prtyd, prtyw, popcntw;
    __asm__ volatile("popcntb %0,%1" : "=r"(popcntb) : "r"(a));
    __asm__ volatile("popcntw %0,%1" : "=r"(popcntw) : "r"(a));
    __asm__ volatile("prtyd %0,%1" : "=r"(prtyd) : "r"(a));
    __asm__ volatile("prtyw %0,%1" : "=r"(prtyw) : "r"(a));
    uint64_t expected_popcntb = 0;
    for (int k = 0; k < 8; k++) expected_popcntb |= (uint64_t)__builtin_popcountll(a >> 8 * k & 0xff) << 8 * k;
    CHECK_EQ(popcntb, expected_popcntb);
    CHECK_EQ(popcntw,
             (uint64_t)__builtin_popcount((uint32_t)(a >> 32)) << 32 | (uint64_t)__builtin_popcount((uint32_t)a));
    uint64_t parity = 0;
    for (int k = 0; k < 8; k++) parity ^= a >> 8 * k & 1;
    CHECK_EQ(prtyd, parity);
    digest_bits = fnv1a_u64(digest_bits, popcntb ^ popcntw << 1 ^ prtyd << 2 ^ prtyw << 3);
  }
  /* mtocrf/mfocrf move one CR field. */
  uint64_t cr;
  __asm__ volatile("mtocrf 0x08,%1\n\tmfocrf %0,0x08" : "=r"(cr) : "r"(0x0000a000ULL) : "cr4");
  CHECK_EQ(cr >> 12 & 0xf, 0xa);
  printf("bit operations fnv=%016" PRIx64 "\n", digest_bits);
}

#ifdef _ARCH_PWR9
static void power9(void) {
  uint64_t digest9 = FNV_INIT;
  for (size_t i = 0; i < VALUE_COUNT; i++) {
    for (size_t j = 0; j < VALUE_COUNT; j++) {
      const uint64_t a = OPAQUE(values[i]), b = OPAQUE(values[j]), c = OPAQUE(values[(i + j) % VALUE_COUNT]);
      uint64_t maddld, maddhd, maddhdu, setb, cmprb, cmpeqb;
      __asm__ volatile("maddld %0,%1,%2,%3" : "=r"(maddld) : "r"(a), "r"(b), "r"(c));
      __asm__ volatile("maddhd %0,%1,%2,%3" : "=r"(maddhd) : "r"(a), "r"(b), "r"(c));
      __asm__ volatile("maddhdu %0,%1,%2,%3" : "=r"(maddhdu) : "r"(a), "r"(b), "r"(c));
      __asm__ volatile("cmpd 7,%1,%2\n\tsetb %0,7" : "=r"(setb) : "r"(a), "r"(b) : "cr7");
      __asm__ volatile("cmprb 7,1,%1,%2\n\tsetb %0,7" : "=r"(cmprb) : "r"(a), "r"(b) : "cr7");
      __asm__ volatile("cmpeqb 7,%1,%2\n\tsetb %0,7" : "=r"(cmpeqb) : "r"(a), "r"(b) : "cr7");
      const unsigned __int128 wide = (unsigned __int128)a * b + c;
      const __int128 swide = (__int128)(int64_t)a * (int64_t)b + (int64_t)c;
      CHECK_EQ(maddld, (uint64_t)wide);
      CHECK_EQ(maddhdu, (uint64_t)(wide >> 64));
      CHECK_EQ(maddhd, (uint64_t)(swide >> 64));
      CHECK_EQ(setb, (uint64_t)((int64_t)a < (int64_t)b ? -1 : (int64_t)a > (int64_t)b));
      if (b != 0) {
        uint64_t modsd, modud, modsw, moduw;
        __asm__ volatile("modud %0,%1,%2" : "=r"(modud) : "r"(a), "r"(b));
        CHECK_EQ(modud, a % b);
        if (!((int64_t)a == INT64_MIN && (int64_t)b == -1)) {
          __asm__ volatile("modsd %0,%1,%2" : "=r"(modsd) : "r"(a), "r"(b));
          CHECK_EQ(modsd, (uint64_t)((int64_t)a % (int64_t)b));
          digest9 = fnv1a_u64(digest9, modsd);
        }
        if ((uint32_t)b != 0) {
          __asm__ volatile("moduw %0,%1,%2" : "=r"(moduw) : "r"(a), "r"(b));
          CHECK_EQ(moduw, (uint32_t)a % (uint32_t)b);
          if (!((int32_t)a == INT32_MIN && (int32_t)b == -1)) {
            __asm__ volatile("modsw %0,%1,%2" : "=r"(modsw) : "r"(a), "r"(b));
            CHECK_EQ((int32_t)modsw, (int32_t)a % (int32_t)b);
          }
        }
        digest9 = fnv1a_u64(digest9, modud);
      }
      digest9 = fnv1a_u64(digest9, maddld ^ maddhd << 1 ^ maddhdu << 2 ^ setb << 3 ^ cmprb << 4 ^ cmpeqb << 5);
    }
    const uint64_t a = OPAQUE(values[i]);
    uint64_t cnttzd, cnttzw, extswsli;
    __asm__ volatile("cnttzd %0,%1" : "=r"(cnttzd) : "r"(a));
    __asm__ volatile("cnttzw %0,%1" : "=r"(cnttzw) : "r"(a));
    __asm__ volatile("extswsli %0,%1,5" : "=r"(extswsli) : "r"(a));
    CHECK_EQ(cnttzd, a ? (uint64_t)__builtin_ctzll(a) : 64);
    CHECK_EQ(cnttzw, (uint32_t)a ? (uint64_t)__builtin_ctz((uint32_t)a) : 32);
    CHECK_EQ(extswsli, (uint64_t)(int64_t)(int32_t)a << 5);
    digest9 = fnv1a_u64(digest9, cnttzd ^ cnttzw << 8 ^ extswsli << 16);
  }
  printf("power9 fnv=%016" PRIx64 "\n", digest9);
}
#endif

int main(void) {
  carrying();
  overflow_forms();
  shifts_beyond_width();
  bit_operations();
#ifdef _ARCH_PWR9
  power9();
#endif
  return finish();
}
