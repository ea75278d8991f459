// guest-levels: O0 O2 O3-power9
/* glibc's memory routines (the VSX/VMX versions glibc picks from AT_HWCAP) at every source and
 * destination alignment 0..15 and every length 0..300: memcpy, mempcpy, memmove (overlapping both
 * ways), memset, memcmp/bcmp, memchr, memrchr, rawmemchr, with guard bytes checked around every
 * destination, and data ending exactly at a page followed by an inaccessible page. */
#define _GNU_SOURCE
#include "check.h"
#include <inttypes.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_LENGTH 300
#define GUARD 0xee
#define BUFFER (MAX_LENGTH + 64)

static unsigned char source[BUFFER] __attribute__((aligned(64)));
static unsigned char target[BUFFER] __attribute__((aligned(64)));
static unsigned long failures_reported;

static unsigned char pattern(size_t i) { return (unsigned char)((i * 131 + 7) ^ (i >> 8)); }

/* Counts one check for a whole region, so that the check count stays readable. */
static void check_region(int passed, const char *what, size_t a, size_t b, size_t length) {
  if (!passed && failures_reported++ < 20) fprintf(stderr, "%s: alignments %zu/%zu length %zu\n", what, a, b, length);
  CHECK(passed);
}

static int guards_intact(const unsigned char *buffer, size_t start, size_t length) {
  for (size_t i = start >= 16 ? start - 16 : 0; i < start; i++)
    if (buffer[i] != GUARD) return 0;
  for (size_t i = start + length; i < start + length + 16; i++)
    if (buffer[i] != GUARD) return 0;
  return 1;
}

/* Every alignment pair for short lengths; for longer ones every source alignment with a destination
 * alignment that also takes every value as the source's does. */
static int covered(size_t source_align, size_t target_align, size_t length) {
  return length <= 64 || target_align == (source_align * 7) % 16;
}

static void copies(void) {
  memset(target, GUARD, sizeof target);
  uint64_t digest = FNV_INIT;
  for (size_t length = 0; length <= MAX_LENGTH; length++) {
    for (size_t sa = 0; sa < 16; sa++) {
      for (size_t ta = 0; ta < 16; ta++) {
        if (!covered(sa, ta, length)) continue;
        const size_t n = OPAQUE(length);
        unsigned char *const to = target + 16 + ta;
        void *const returned = memcpy(to, source + sa, n);
        int same = returned == to;
        for (size_t i = 0; i < length; i++) same &= to[i] == source[sa + i];
        check_region(same && guards_intact(target, 16 + ta, length), "memcpy", sa, ta, length);
        memset(to, GUARD, length);
        unsigned char *const end = mempcpy(to, source + sa, n);
        check_region(
            end == to + length && memcmp(to, source + sa, length) == 0 && guards_intact(target, 16 + ta, length),
            "mempcpy", sa, ta, length);
        digest = fnv1a(digest, to, length);
        memset(to, GUARD, length);
      }
    }
  }
  printf("memcpy fnv=%016" PRIx64 "\n", digest);
}

/* Overlapping moves: every source alignment against destinations up to 17 bytes either side (each
 * overlap both ways) for short lengths, a few distances for long ones. */
static void moves(void) {
  enum { BASE = 48 };
  static unsigned char buffer[BASE + BUFFER + 64], expected[BASE + BUFFER + 64];
  static const int far_distances[] = {-33, -16, -9, -1, 1, 8, 15, 32};
  uint64_t digest = FNV_INIT;
  for (size_t length = 0; length <= MAX_LENGTH; length += (length < 64 ? 1 : 7)) {
    const size_t window = BASE + 16 + length + 40;
    for (size_t from_align = 0; from_align < 16; from_align++) {
      const int distances = length < 64 ? 35 : (int)(sizeof far_distances / sizeof far_distances[0]);
      for (int d = 0; d < distances; d++) {
        const int distance = length < 64 ? d - 17 : far_distances[d];
        const size_t from = BASE + from_align, to = (size_t)((int)from + distance);
        for (size_t i = 0; i < window; i++) buffer[i] = expected[i] = pattern(i + 3);
        /* The reference copies through a temporary, which is what memmove promises. */
        unsigned char temporary[BUFFER];
        for (size_t i = 0; i < length; i++) temporary[i] = expected[from + i];
        for (size_t i = 0; i < length; i++) expected[to + i] = temporary[i];
        void *const returned = memmove(buffer + to, buffer + from, OPAQUE(length));
        check_region(returned == buffer + to && memcmp(buffer, expected, window) == 0, "memmove", from, to, length);
        digest = fnv1a(digest, buffer + to, length < 8 ? length : 8);
      }
    }
  }
  printf("memmove fnv=%016" PRIx64 "\n", digest);
}

static void fills(void) {
  static const int values[] = {0, 0x5a, 0x1ff};
  memset(target, GUARD, sizeof target);
  for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
    for (size_t length = 0; length <= MAX_LENGTH; length++) {
      for (size_t align = 0; align < 16; align++) {
        unsigned char *const to = target + 16 + align;
        void *const returned = memset(to, OPAQUE(values[v]), OPAQUE(length));
        int same = returned == to;
        for (size_t i = 0; i < length; i++) same &= to[i] == (unsigned char)values[v];
        check_region(same && guards_intact(target, 16 + align, length), "memset", align, (size_t)values[v], length);
        for (size_t i = 0; i < length; i++) to[i] = GUARD;
      }
    }
  }
  for (size_t length = 0; length <= MAX_LENGTH; length += 13) {
    unsigned char *const to = target + 16 + length % 16;
    memset(to, 0x33, length);
    bzero(OPAQUE(to), OPAQUE(length));
    int zero = 1;
    for (size_t i = 0; i < length; i++) zero &= to[i] == 0;
    check_region(zero && guards_intact(target, 16 + length % 16, length), "bzero", length % 16, 0, length);
    memset(to, GUARD, length);
  }
  printf("memset done\n");
}

static int sign(int x) { return (x > 0) - (x < 0); }

static void comparisons(void) {
  static unsigned char a[BUFFER], b[BUFFER];
  uint64_t digest = FNV_INIT;
  for (size_t length = 0; length <= MAX_LENGTH; length++) {
    for (size_t sa = 0; sa < 16; sa++) {
      for (size_t ta = 0; ta < 16; ta++) {
        if (!covered(sa, ta, length)) continue;
        for (size_t i = 0; i < length; i++) a[sa + i] = b[ta + i] = pattern(i);
        const size_t n = OPAQUE(length);
        check_region(memcmp(a + sa, b + ta, n) == 0 && bcmp(a + sa, b + ta, n) == 0, "memcmp equal", sa, ta, length);
        if (length == 0) continue;
        /* A difference at the first, a middle and the last byte, in both directions; bytes compare
         * unsigned, so 0x80 is greater than 0x7f. */
        const size_t positions[3] = {0, length / 2, length - 1};
        for (int p = 0; p < 3; p++) {
          const size_t at = positions[p];
          a[sa + at] = 0x80;
          b[ta + at] = 0x7f;
          const int forward = memcmp(a + sa, b + ta, n), backward = memcmp(b + ta, a + sa, n);
          check_region(forward > 0 && backward < 0 && bcmp(a + sa, b + ta, n) != 0, "memcmp order", sa, ta, length);
          digest = fnv1a_u64(digest, (uint64_t)(sign(forward) + 2));
          a[sa + at] = b[ta + at] = pattern(at);
        }
      }
    }
  }
  printf("memcmp fnv=%016" PRIx64 "\n", digest);
}

static void searches(void) {
  static unsigned char haystack[BUFFER + 16];
  uint64_t digest = FNV_INIT;
  for (size_t length = 0; length <= MAX_LENGTH; length++) {
    for (size_t align = 0; align < 16; align++) {
      unsigned char *const start = haystack + align;
      for (size_t i = 0; i < length + 16 && align + i < sizeof haystack; i++) start[i] = (unsigned char)(1 + i % 250);
      const size_t n = OPAQUE(length);
      /* Absent: the byte sits just past the end. */
      if (length < MAX_LENGTH) start[length] = 0xfe;
      check_region(memchr(start, 0xfe, n) == NULL && memrchr(start, 0xfe, n) == NULL, "memchr absent", align, 0,
                   length);
      if (length == 0) continue;
      const size_t positions[4] = {0, length / 3, length / 2, length - 1};
      for (int p = 0; p < 4; p++) {
        const size_t at = positions[p];
        start[at] = 0xfe;
        const unsigned char *const found = memchr(start, 0xfe, n);
        const unsigned char *const last = memrchr(start, 0xfe, n);
        const unsigned char *const raw = rawmemchr(start, 0xfe);
        /* The positions ascend and stay marked: the first is always at 0, the last is this one. */
        check_region(found == start && raw == start, "memchr", align, at, length);
        check_region(last == start + at, "memrchr", align, at, length);
        digest = fnv1a_u64(digest, (uint64_t)(found - start) << 16 | (uint64_t)(last - start));
      }
      for (size_t i = 0; i < length; i++) start[i] = (unsigned char)(1 + i % 250);
      /* The value is converted to unsigned char: 0x1fe finds 0xfe. */
      start[length - 1] = 0xfe;
      check_region(memchr(start, 0x1fe, n) == start + length - 1, "memchr int", align, 0, length);
      start[length - 1] = (unsigned char)(1 + (length - 1) % 250);
    }
  }
  printf("memchr fnv=%016" PRIx64 "\n", digest);
}

/* Vector implementations read whole aligned blocks; none may touch the page after the data. */
static void page_edges(void) {
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  unsigned char *const region = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(region != MAP_FAILED);
  if (region == MAP_FAILED) return;
  CHECK(mprotect(region + page, page, PROT_NONE) == 0);
  unsigned char *const end = region + page;
  for (size_t i = 0; i < page; i++) region[i] = (unsigned char)(i % 199 + 1);
  static unsigned char copy[MAX_LENGTH];
  for (size_t length = 0; length <= MAX_LENGTH; length++) {
    const unsigned char *const data = end - length;
    const size_t n = OPAQUE(length);
    memcpy(copy, data, n);
    check_region(memcmp(copy, data, n) == 0, "page memcpy", 0, 0, length);
    check_region(memchr(data, 0, n) == NULL, "page memchr", 0, 0, length);
    check_region(memrchr(data, 0, n) == NULL, "page memrchr", 0, 0, length);
    if (length) {
      check_region(memchr(data, data[length - 1], n) <= (const void *)(end - 1), "page memchr last", 0, 0, length);
      check_region(memcmp(data, copy, n - 1) == 0, "page memcmp", 0, 0, length);
    }
    memset(end - length, 0xab, n);
    int filled = 1;
    for (size_t i = 1; i <= length; i++) filled &= *(end - i) == 0xab;
    check_region(filled, "page memset", 0, 0, length);
    memmove(end - length, copy, n);
    check_region(memcmp(end - length, copy, n) == 0, "page memmove", 0, 0, length);
  }
  CHECK(munmap(region, 2 * page) == 0);
}

int main(void) {
  for (size_t i = 0; i < sizeof source; i++) source[i] = pattern(i);
  copies();
  moves();
  fills();
  comparisons();
  searches();
  page_edges();
  return finish();
}
