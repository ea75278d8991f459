/* Anonymous and file-backed memory mappings: a 64 MiB anonymous mapping touched sparsely (zero on
 * first touch, every 1 MiB and at seeded random pages), partial munmap punching a hole, mprotect to
 * read-only and back, mremap growing in place or moving (contents kept) and shrinking,
 * madvise(MADV_DONTNEED) dropping anonymous pages back to zero, MAP_FIXED over part of a mapping, and
 * a MAP_PRIVATE mapping of a file written here, whose private changes never reach the file. */
#define _GNU_SOURCE
#include "check.h"
#include <fcntl.h>
#include <inttypes.h>
#include <sys/mman.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)

static size_t page;

static uint64_t marker(size_t offset) { return offset * 0x9e3779b97f4a7c15ULL ^ 0x5a5a5a5a; }

static void large_anonymous(void) {
  const size_t size = 64 * MIB;
  unsigned char *const base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(base != MAP_FAILED);
  if (base == MAP_FAILED) return;
  CHECK(((uintptr_t)base & (page - 1)) == 0);
  /* Untouched memory reads as zero; then one 8-byte marker per MiB and per random page. */
  size_t offsets[64 + 200];
  size_t count = 0;
  for (size_t mib = 0; mib < 64; mib++) offsets[count++] = mib * MIB + (mib * 8 % page);
  rng_seed(64);
  for (int i = 0; i < 200; i++) offsets[count++] = (size_t)rng_below(size / 8) * 8;
  int zero = 1;
  for (size_t i = 0; i < count; i++) zero &= *(uint64_t *)(base + offsets[i]) == 0;
  CHECK(zero);
  for (size_t i = 0; i < count; i++) *(uint64_t *)(base + offsets[i]) = marker(offsets[i]);
  int kept = 1;
  for (size_t i = 0; i < count; i++) kept &= *(uint64_t *)(base + offsets[i]) == marker(offsets[i]);
  CHECK(kept);
  /* The last byte of the mapping is usable. */
  base[size - 1] = 0x77;
  CHECK_EQ(base[size - 1], 0x77);
  /* madvise(DONTNEED) on anonymous memory: the pages read as zero afterwards. */
  CHECK_EQ(madvise(base, 4 * MIB, MADV_DONTNEED), 0);
  CHECK_EQ(*(uint64_t *)(base + MIB + 8 % page), 0);
  CHECK_EQ(*(uint64_t *)(base + 8 * MIB + 64), marker(8 * MIB + 64));
  /* A hole in the middle, then the two ends are still intact and unmapped separately. */
  CHECK_EQ(munmap(base + 16 * MIB, 16 * MIB), 0);
  CHECK_EQ(*(uint64_t *)(base + 15 * MIB + 120), marker(15 * MIB + 120));
  CHECK_EQ(*(uint64_t *)(base + 32 * MIB + 256), marker(32 * MIB + 256));
  CHECK_EQ(mprotect(base + 32 * MIB, MIB, PROT_READ), 0);
  CHECK_EQ(*(uint64_t *)(base + 32 * MIB + 256), marker(32 * MIB + 256));
  CHECK_EQ(mprotect(base + 32 * MIB, MIB, PROT_READ | PROT_WRITE), 0);
  *(uint64_t *)(base + 32 * MIB + 256) = 1;
  CHECK_EQ(munmap(base, 16 * MIB), 0);
  CHECK_EQ(munmap(base + 32 * MIB, 32 * MIB), 0);
  /* Unmapping what is no longer mapped is not an error. */
  CHECK_EQ(munmap(base + 16 * MIB, 16 * MIB), 0);
  printf("64 MiB mapping: %zu markers written and read back\n", count);
}

static void remapping(void) {
  size_t size = 2 * MIB;
  unsigned char *region = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(region != MAP_FAILED);
  for (size_t i = 0; i < size; i += page) region[i] = (unsigned char)(i / page);
  /* Growing may move the mapping; the contents move with it. */
  unsigned char *grown = mremap(region, size, 8 * MIB, MREMAP_MAYMOVE);
  CHECK(grown != MAP_FAILED);
  int moved_intact = 1;
  for (size_t i = 0; i < size; i += page) moved_intact &= grown[i] == (unsigned char)(i / page);
  CHECK(moved_intact);
  CHECK_EQ(grown[8 * MIB - 1], 0);
  grown[8 * MIB - 1] = 9;
  /* Shrinking keeps the address. */
  unsigned char *shrunk = mremap(grown, 8 * MIB, MIB, 0);
  CHECK(shrunk == grown);
  CHECK_EQ(shrunk[page], 1);
  /* MAP_FIXED replaces part of an existing mapping with fresh zero pages. */
  unsigned char *fixed =
      mmap(shrunk + page, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  CHECK(fixed == shrunk + page);
  CHECK_EQ(shrunk[page], 0);
  CHECK_EQ(shrunk[2 * page], 2);
  CHECK_EQ(munmap(shrunk, MIB), 0);
  /* Errors: a length of zero, an unaligned address. */
  CHECK(mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED);
  CHECK(munmap((void *)((uintptr_t)shrunk + 1), page) == -1);
}

static void file_backed(void) {
  const size_t size = 3 * page + 100;
  const int fd = open("mapped.bin", O_RDWR | O_CREAT | O_TRUNC, 0644);
  CHECK(fd >= 0);
  unsigned char *contents = malloc(size);
  for (size_t i = 0; i < size; i++) contents[i] = (unsigned char)(i * 13 + 1);
  CHECK_EQ(write(fd, contents, size), size);
  unsigned char *mapped = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  CHECK(mapped != MAP_FAILED);
  CHECK(memcmp(mapped, contents, size) == 0);
  /* Past the end of the file, the last page is zero-filled. */
  const size_t mapped_end = (size + page - 1) / page * page;
  int tail_zero = 1;
  for (size_t i = size; i < mapped_end; i++) tail_zero &= mapped[i] == 0;
  CHECK(tail_zero);
  /* Private writes stay private. */
  memset(mapped + page, 0xaa, page);
  unsigned char check[64];
  CHECK_EQ(pread(fd, check, sizeof check, (off_t)page), sizeof check);
  CHECK(memcmp(check, contents + page, sizeof check) == 0);
  CHECK_EQ(munmap(mapped, size), 0);
  /* A mapping at a page-aligned file offset. */
  unsigned char *second = mmap(NULL, page, PROT_READ, MAP_PRIVATE, fd, (off_t)(2 * page));
  CHECK(second != MAP_FAILED && memcmp(second, contents + 2 * page, page) == 0);
  CHECK_EQ(munmap(second, page), 0);
  CHECK(mmap(NULL, page, PROT_READ, MAP_PRIVATE, fd, 1) == MAP_FAILED); /* offset not page-aligned */
  CHECK_EQ(close(fd), 0);
  free(contents);
  printf("file mapping of 3 pages and 100 bytes checked\n");
}

int main(void) {
  page = (size_t)sysconf(_SC_PAGESIZE);
  large_anonymous();
  remapping();
  file_backed();
  return finish();
}
