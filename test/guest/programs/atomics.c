// guest-levels: O0 O2 O3-power9
/* Atomic operations at every width (1, 2, 4 and 8 bytes: lbarx/lharx/lwarx/ldarx with their
 * stcx. forms) through the __atomic builtins and C11 <stdatomic.h>: fetch-and-add/sub/and/or/xor/nand,
 * exchange, strong and weak compare-exchange (succeeding and failing), loads and stores of every
 * memory order with the fences they need, on neighbouring fields of one structure, and a spin lock. */
#include "check.h"
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>

#define ATOMIC_SUITE(T, NAME)                                                                                          \
  static uint64_t atomics_##NAME(void) {                                                                               \
    static T cell;                                                                                                     \
    uint64_t digest = FNV_INIT;                                                                                        \
    __atomic_store_n(&cell, (T)0, __ATOMIC_SEQ_CST);                                                                   \
    T shadow = 0;                                                                                                      \
    rng_seed(sizeof(T));                                                                                               \
    for (int i = 0; i < 2000; i++) {                                                                                   \
      const T operand = (T)rng_next();                                                                                 \
      T before;                                                                                                        \
      switch (i % 8) {                                                                                                 \
        case 0:                                                                                                        \
          before = __atomic_fetch_add(&cell, operand, __ATOMIC_RELAXED);                                               \
          shadow = (T)(shadow + operand);                                                                              \
          break;                                                                                                       \
        case 1:                                                                                                        \
          before = __atomic_fetch_sub(&cell, operand, __ATOMIC_ACQUIRE);                                               \
          shadow = (T)(shadow - operand);                                                                              \
          break;                                                                                                       \
        case 2:                                                                                                        \
          before = __atomic_fetch_and(&cell, operand | (T)0x0f, __ATOMIC_RELEASE);                                     \
          shadow &= operand | (T)0x0f;                                                                                 \
          break;                                                                                                       \
        case 3:                                                                                                        \
          before = __atomic_fetch_or(&cell, operand & (T)0x30, __ATOMIC_ACQ_REL);                                      \
          shadow |= operand & (T)0x30;                                                                                 \
          break;                                                                                                       \
        case 4:                                                                                                        \
          before = __atomic_fetch_xor(&cell, operand, __ATOMIC_SEQ_CST);                                               \
          shadow ^= operand;                                                                                           \
          break;                                                                                                       \
        case 5:                                                                                                        \
          before = __atomic_fetch_nand(&cell, operand, __ATOMIC_SEQ_CST);                                              \
          shadow = (T) ~(shadow & operand);                                                                            \
          break;                                                                                                       \
        case 6:                                                                                                        \
          before = __atomic_exchange_n(&cell, operand, __ATOMIC_SEQ_CST);                                              \
          shadow = operand;                                                                                            \
          break;                                                                                                       \
        default: {                                                                                                     \
          T expected = shadow;                                                                                         \
          CHECK(__atomic_compare_exchange_n(&cell, &expected, operand, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));        \
          T wrong = (T)(operand + 1);                                                                                  \
          CHECK(!__atomic_compare_exchange_n(&cell, &wrong, (T)0, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED));             \
          CHECK(wrong == operand); /* a failed exchange reports the value it found */                                  \
          before = expected;                                                                                           \
          shadow = operand;                                                                                            \
        }                                                                                                              \
      }                                                                                                                \
      CHECK(__atomic_load_n(&cell, __ATOMIC_ACQUIRE) == shadow);                                                       \
      digest = fnv1a_u64(digest, (uint64_t)before);                                                                    \
    }                                                                                                                  \
    CHECK(__atomic_add_fetch(&cell, (T)1, __ATOMIC_SEQ_CST) == (T)(shadow + 1));                                       \
    /* A weak compare-exchange may fail spuriously: retried in a loop it must succeed. */                              \
    T expected = __atomic_load_n(&cell, __ATOMIC_RELAXED);                                                             \
    while (!__atomic_compare_exchange_n(&cell, &expected, (T)(expected * 3), 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED)) { \
    }                                                                                                                  \
    CHECK(cell == (T)((T)(shadow + 1) * 3));                                                                           \
    printf("%-6s atomics fnv=%016" PRIx64 "\n", #NAME, digest);                                                        \
    return digest;                                                                                                     \
  }

ATOMIC_SUITE(uint8_t, uint8)
ATOMIC_SUITE(uint16_t, uint16)
ATOMIC_SUITE(uint32_t, uint32)
ATOMIC_SUITE(uint64_t, uint64)

/* Neighbouring fields: an atomic operation on one must not disturb the bytes around it. */
static void neighbours(void) {
  static struct {
    uint8_t a;
    uint8_t b;
    uint16_t c;
    uint32_t d;
    uint64_t e;
  } packed = {0x11, 0x22, 0x3333, 0x44444444, 0x5555555555555555ULL};
  __atomic_fetch_add(&packed.b, 1, __ATOMIC_SEQ_CST);
  __atomic_fetch_xor(&packed.c, 0xffff, __ATOMIC_SEQ_CST);
  __atomic_exchange_n(&packed.d, 0xdeadbeef, __ATOMIC_SEQ_CST);
  CHECK_EQ(packed.a, 0x11);
  CHECK_EQ(packed.b, 0x23);
  CHECK_EQ(packed.c, 0xcccc);
  CHECK_EQ(packed.d, 0xdeadbeef);
  CHECK_EQ(packed.e, 0x5555555555555555ULL);
}

static void c11(void) {
  static atomic_int counter = 0;
  static atomic_llong wide = 0;
  static atomic_bool flag = false;
  static atomic_flag lock = ATOMIC_FLAG_INIT;
  for (int i = 0; i < 1000; i++) {
    atomic_fetch_add_explicit(&counter, i, memory_order_relaxed);
    atomic_fetch_sub(&wide, (long long)i << 33);
  }
  CHECK_EQ(atomic_load(&counter), 499500);
  CHECK_EQ(atomic_load(&wide), (uint64_t) - (499500LL << 33));
  bool expected = false;
  CHECK(atomic_compare_exchange_strong(&flag, &expected, true));
  CHECK(!atomic_compare_exchange_strong(&flag, &expected, true) && expected);
  /* A test-and-set spin lock held and released 100 times. */
  int critical = 0;
  for (int i = 0; i < 100; i++) {
    while (atomic_flag_test_and_set_explicit(&lock, memory_order_acquire)) {
    }
    critical++;
    atomic_flag_clear_explicit(&lock, memory_order_release);
  }
  CHECK_EQ(critical, 100);
  CHECK(!atomic_flag_test_and_set(&lock));
  atomic_thread_fence(memory_order_seq_cst);
  atomic_signal_fence(memory_order_acq_rel);
  CHECK(atomic_is_lock_free(&wide));
  CHECK(__atomic_always_lock_free(8, 0));
}

int main(void) {
  uint64_t all = FNV_INIT;
  all = fnv1a_u64(all, atomics_uint8());
  all = fnv1a_u64(all, atomics_uint16());
  all = fnv1a_u64(all, atomics_uint32());
  all = fnv1a_u64(all, atomics_uint64());
  printf("all atomics fnv=%016" PRIx64 "\n", all);
  neighbours();
  c11();
  return finish();
}
