/* Shared by every guest program: self-checks that count what passed, report what failed on stderr
 * and end the program with "ok N" (exit status 0) or "FAILED" (exit status 1); a seeded random
 * generator and a digest, so that output is deterministic and large results print as one line. */
#ifndef GUEST_CHECK_H
#define GUEST_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long guest_checks;
static unsigned long guest_failures;

static inline void check_at(int passed, const char *what, const char *file, int line) {
  guest_checks++;
  if (!passed) {
    guest_failures++;
    fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
  }
}

static inline void check_eq_at(unsigned long long actual, unsigned long long expected, const char *what,
                               const char *file, int line) {
  guest_checks++;
  if (actual != expected) {
    guest_failures++;
    fprintf(stderr, "%s:%d: check failed: %s is 0x%llx, expected 0x%llx\n", file, line, what, actual, expected);
  }
}

static inline void check_str_at(const char *actual, const char *expected, const char *what, const char *file,
                                int line) {
  guest_checks++;
  if (strcmp(actual, expected) != 0) {
    guest_failures++;
    fprintf(stderr, "%s:%d: check failed: %s is \"%s\", expected \"%s\"\n", file, line, what, actual, expected);
  }
}

#define CHECK(cond) check_at(!!(cond), #cond, __FILE__, __LINE__)
#define CHECK_EQ(actual, expected) \
  check_eq_at((unsigned long long)(actual), (unsigned long long)(expected), #actual, __FILE__, __LINE__)
#define CHECK_STR(actual, expected) check_str_at((actual), (expected), #actual, __FILE__, __LINE__)

/* Ends main: the last line of stdout says how many checks passed, or the exit status says failure. */
static inline int finish(void) {
  if (guest_failures) {
    printf("FAILED %lu of %lu checks\n", guest_failures, guest_checks);
    return 1;
  }
  printf("ok %lu\n", guest_checks);
  return 0;
}

/* A value the compiler cannot see through, so that -O2 computes at run time what -O0 computes. */
#define OPAQUE(x)                         \
  ({                                      \
    volatile __typeof__(x) opaque_ = (x); \
    opaque_;                              \
  })

/* splitmix64: a seeded generator, the same sequence on every run. */
static uint64_t rng_state = 0x0123456789abcdefULL;

static inline void rng_seed(uint64_t seed) { rng_state = seed; }

static inline uint64_t rng_next(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* A uniform value in [0, bound). */
static inline uint64_t rng_below(uint64_t bound) { return rng_next() % bound; }

/* FNV-1a, 64-bit: one line of output stands for many bytes of results. */
#define FNV_INIT 0xcbf29ce484222325ULL

static inline uint64_t fnv1a(uint64_t hash, const void *data, size_t size) {
  const unsigned char *p = data;
  for (size_t i = 0; i < size; i++) {
    hash ^= p[i];
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

static inline uint64_t fnv1a_u64(uint64_t hash, uint64_t value) { return fnv1a(hash, &value, sizeof value); }

#endif
