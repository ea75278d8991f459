// guest-levels: O0 O2
/* malloc, calloc, realloc and free under a seeded random workload of 20,000 operations over 1,500
 * slots: sizes from 0 bytes to 2 MiB (past the mmap threshold, so brk, mmap, munmap and mremap are all
 * exercised), every block stamped with its own pattern and verified before it is resized or freed,
 * realloc preserving contents while growing and shrinking, calloc memory zeroed (also when reused),
 * and posix_memalign/aligned_alloc/memalign alignments up to 64 KiB. */
#define _GNU_SOURCE
#include "check.h"
#include <inttypes.h>
#include <malloc.h>

#define SLOTS 1500
#define OPERATIONS 20000

struct slot {
  unsigned char *data;
  size_t size;
  uint32_t stamp;
};

static struct slot slots[SLOTS];
static unsigned long corrupt_blocks;

/* Byte i of a block stamped s. */
static unsigned char stamp_byte(uint32_t stamp, size_t i) {
  return (unsigned char)((stamp * 2654435761u + i * 40503u) >> 13);
}

/* The stamped byte after i. Small blocks are stamped whole; large ones in their first and last 64
 * bytes and once per 4 KiB between: enough to catch a lost page or a bad copy, cheap enough to run. */
static size_t next_stamped(size_t i, size_t size) {
  const size_t next = i + 1;
  if (size <= 512 || next < 64 || next + 64 >= size) return next;
  const size_t page = (next + 4095) / 4096 * 4096;
  return page < size - 64 ? page : size - 64;
}

static void stamp_block(struct slot *slot) {
  for (size_t i = 0; i < slot->size; i = next_stamped(i, slot->size)) slot->data[i] = stamp_byte(slot->stamp, i);
}

/* Verifies the stamped bytes among the first `length` of a block stamped when it had `stamped_size`. */
static void verify_block(const struct slot *slot, size_t length, size_t stamped_size) {
  int intact = 1;
  for (size_t i = 0; i < length; i = next_stamped(i, stamped_size)) {
    if (slot->data[i] != stamp_byte(slot->stamp, i)) intact = 0;
  }
  if (!intact && corrupt_blocks++ < 10) fprintf(stderr, "block of %zu bytes corrupted\n", slot->size);
  CHECK(intact);
}

static size_t random_size(void) {
  const uint64_t r = rng_below(1000);
  if (r < 700) return (size_t)rng_below(257);
  if (r < 950) return 257 + (size_t)rng_below(16 * 1024);
  if (r < 995) return 16 * 1024 + (size_t)rng_below(240 * 1024);
  return 256 * 1024 + (size_t)rng_below(1792 * 1024);
}

static void workload(void) {
  unsigned long mallocs = 0, callocs = 0, reallocs = 0, frees = 0;
  uint64_t bytes = 0;
  rng_seed(2024);
  for (int op = 0; op < OPERATIONS; op++) {
    struct slot *const slot = &slots[rng_below(SLOTS)];
    const uint64_t action = rng_below(10);
    if (slot->data == NULL) {
      slot->size = random_size();
      slot->stamp = (uint32_t)rng_next();
      if (action < 3) {
        slot->data = calloc(1, slot->size);
        CHECK(slot->data != NULL || slot->size == 0);
        int zero = 1;
        for (size_t i = 0; i < slot->size; i = next_stamped(i, slot->size)) zero &= slot->data[i] == 0;
        CHECK(zero);
        callocs++;
      } else {
        slot->data = malloc(slot->size);
        mallocs++;
      }
      if (slot->data == NULL) slot->data = malloc(1); /* malloc(0) may return NULL; keep the slot in use */
      stamp_block(slot);
      bytes += slot->size;
    } else if (action < 4) {
      verify_block(slot, slot->size, slot->size);
      const size_t new_size = action == 0 ? slot->size / 2 : random_size();
      unsigned char *const moved = realloc(slot->data, new_size ? new_size : 1);
      CHECK(moved != NULL);
      slot->data = moved;
      const size_t kept = new_size < slot->size ? new_size : slot->size;
      verify_block(slot, kept, slot->size);
      slot->size = new_size;
      stamp_block(slot);
      reallocs++;
      bytes += new_size;
    } else {
      verify_block(slot, slot->size, slot->size);
      free(slot->data);
      slot->data = NULL;
      frees++;
    }
  }
  unsigned long live = 0;
  for (int i = 0; i < SLOTS; i++) {
    if (slots[i].data) {
      verify_block(&slots[i], slots[i].size, slots[i].size);
      free(slots[i].data);
      live++;
    }
  }
  printf("malloc %lu calloc %lu realloc %lu free %lu, %lu live at the end, %" PRIu64 " bytes requested\n", mallocs,
         callocs, reallocs, frees, live, bytes);
}

static void alignments(void) {
  for (size_t alignment = sizeof(void *); alignment <= 65536; alignment *= 2) {
    void *p = NULL;
    CHECK_EQ(posix_memalign(&p, alignment, 100 + alignment / 2), 0);
    CHECK(((uintptr_t)p & (alignment - 1)) == 0);
    memset(p, 0x5c, 100 + alignment / 2);
    void *q = aligned_alloc(alignment, alignment * 3);
    CHECK(q != NULL && ((uintptr_t)q & (alignment - 1)) == 0);
    void *r = memalign(alignment, 7);
    CHECK(r != NULL && ((uintptr_t)r & (alignment - 1)) == 0);
    free(p);
    free(q);
    free(r);
  }
  void *p = NULL;
  CHECK_EQ(posix_memalign(&p, 3, 16), 22); /* EINVAL: not a power of two */
  CHECK((uintptr_t)malloc(1) % 16 == 0);   /* malloc's own alignment on ppc64 is 16 */
}

/* Memory freed and handed out again by calloc must still read as zero. */
static void reuse(void) {
  for (int round = 0; round < 50; round++) {
    const size_t size = 64 + (size_t)round * 1000;
    unsigned char *dirty = malloc(size);
    memset(dirty, 0xff, size);
    free(dirty);
    unsigned char *clean = calloc(size, 1);
    int zero = 1;
    for (size_t i = 0; i < size; i++) zero &= clean[i] == 0;
    CHECK(zero);
    free(clean);
  }
  CHECK(calloc(OPAQUE((size_t)1 << 62), 8) == NULL); /* the product overflows */
  CHECK(malloc(OPAQUE((size_t)-1 / 2)) == NULL);
}

int main(void) {
  workload();
  alignments();
  reuse();
  return finish();
}
