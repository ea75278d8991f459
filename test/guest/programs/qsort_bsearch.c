/* qsort and bsearch: integers in random, sorted, reversed, all-equal and few-distinct orders for
 * sizes 0..1000, strings, and records of an odd size (13 bytes) and of a large size (200 bytes, where
 * glibc sorts indirectly); bsearch for present keys and for absent keys between and beyond them;
 * lfind/lsearch. Each result is checked sorted and a permutation of its input. */
#define _GNU_SOURCE
#include "check.h"
#include <inttypes.h>
#include <search.h>

static int compare_ints(const void *a, const void *b) {
  const int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

static int compare_strings(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

struct odd_record {
  unsigned char key[5];
  unsigned char payload[8];
};

static int compare_odd(const void *a, const void *b) { return memcmp(a, b, 5); }

struct large_record {
  int64_t key;
  char text[192];
};

static int compare_large(const void *a, const void *b) {
  const struct large_record *x = a, *y = b;
  return (x->key > y->key) - (x->key < y->key);
}

/* Sorted, and the same multiset as the input (the sums of values and squares agree). */
static void check_sorted_ints(const int *sorted, size_t n, uint64_t sum, uint64_t squares, const char *order) {
  int ordered = 1;
  uint64_t s = 0, q = 0;
  for (size_t i = 0; i < n; i++) {
    if (i && sorted[i - 1] > sorted[i]) ordered = 0;
    s += (uint64_t)(int64_t)sorted[i];
    q += (uint64_t)((int64_t)sorted[i] * sorted[i]);
  }
  if (!ordered || s != sum || q != squares) fprintf(stderr, "qsort %s of %zu elements failed\n", order, n);
  CHECK(ordered && s == sum && q == squares);
}

static void integers(void) {
  static int values[1001];
  static const char *const orders[] = {"random", "sorted", "reversed", "equal", "few", "organ-pipe"};
  uint64_t digest = FNV_INIT;
  rng_seed(5);
  for (size_t n = 0; n <= 1000; n += (n < 40 ? 1 : 37)) {
    for (int order = 0; order < 6; order++) {
      uint64_t sum = 0, squares = 0;
      for (size_t i = 0; i < n; i++) {
        int v;
        switch (order) {
          case 0: v = (int)(rng_next() >> 33) - (1 << 30); break;
          case 1: v = (int)i * 3 - 500; break;
          case 2: v = 1000 - (int)i * 2; break;
          case 3: v = 42; break;
          case 4: v = (int)rng_below(4) - 2; break;
          default: v = (int)(i < n / 2 ? i : n - i); break;
        }
        values[i] = v;
        sum += (uint64_t)(int64_t)v;
        squares += (uint64_t)((int64_t)v * v);
      }
      qsort(values, n, sizeof values[0], compare_ints);
      check_sorted_ints(values, n, sum, squares, orders[order]);
      digest = fnv1a(digest, values, n * sizeof values[0]);
      /* Every present value is found, at a position holding that value. */
      for (size_t i = 0; i < n; i += 1 + n / 50) {
        const int *found = bsearch(&values[i], values, n, sizeof values[0], compare_ints);
        CHECK(found != NULL && *found == values[i]);
      }
      if (n) {
        const int below = values[0] - 1, above = values[n - 1] + 1;
        CHECK(bsearch(&below, values, n, sizeof values[0], compare_ints) == NULL);
        CHECK(bsearch(&above, values, n, sizeof values[0], compare_ints) == NULL);
      }
      if (order == 1) {
        /* Between every two neighbours of an arithmetic progression nothing is found. */
        for (size_t i = 0; i + 1 < n; i++) {
          const int between = values[i] + 1;
          CHECK(bsearch(&between, values, n, sizeof values[0], compare_ints) == NULL);
        }
      }
    }
  }
  printf("integers fnv=%016" PRIx64 "\n", digest);
}

static void strings(void) {
  static const char *const words[] = {"pear", "apple",      "fig",       "banana",   "Cherry", "apple",       "",
                                      "date", "elderberry", "grape",     "apricot",  "APPLE",  "kiwi",        "lemon",
                                      "lime", "mango",      "nectarine", "zucchini", "yam",    "banana split"};
  const size_t n = sizeof words / sizeof words[0];
  const char *sorted[sizeof words / sizeof words[0]];
  memcpy(sorted, words, sizeof words);
  qsort(sorted, n, sizeof sorted[0], compare_strings);
  printf("strings:");
  for (size_t i = 0; i < n; i++) printf(" \"%s\"", sorted[i]);
  printf("\n");
  for (size_t i = 1; i < n; i++) CHECK(strcmp(sorted[i - 1], sorted[i]) <= 0);
  const char *key = "mango";
  const char *const *found = bsearch(&key, sorted, n, sizeof sorted[0], compare_strings);
  CHECK(found != NULL && strcmp(*found, "mango") == 0);
  key = "melon";
  CHECK(bsearch(&key, sorted, n, sizeof sorted[0], compare_strings) == NULL);
}

static void records(void) {
  static struct odd_record odd[700];
  CHECK_EQ(sizeof(struct odd_record), 13);
  rng_seed(13);
  for (size_t i = 0; i < 700; i++) {
    for (int k = 0; k < 5; k++) odd[i].key[k] = (unsigned char)rng_below(256);
    /* The payload repeats the key, so that a record torn apart by a bad swap is detected. */
    for (int k = 0; k < 8; k++) odd[i].payload[k] = odd[i].key[k % 5] ^ 0x5a;
  }
  qsort(odd, 700, sizeof odd[0], compare_odd);
  int intact = 1, ordered = 1;
  for (size_t i = 0; i < 700; i++) {
    for (int k = 0; k < 8; k++) intact &= odd[i].payload[k] == (odd[i].key[k % 5] ^ 0x5a);
    if (i) ordered &= memcmp(odd[i - 1].key, odd[i].key, 5) <= 0;
  }
  CHECK(intact && ordered);
  printf("odd records fnv=%016" PRIx64 "\n", fnv1a(FNV_INIT, odd, sizeof odd));

  static struct large_record large[300];
  for (size_t i = 0; i < 300; i++) {
    large[i].key = (int64_t)(rng_next() % 1000) - 500;
    snprintf(large[i].text, sizeof large[i].text, "record %zu key %" PRId64, i, large[i].key);
  }
  qsort(large, 300, sizeof large[0], compare_large);
  ordered = 1;
  intact = 1;
  for (size_t i = 0; i < 300; i++) {
    if (i) ordered &= large[i - 1].key <= large[i].key;
    const char *text = strstr(large[i].text, " key ");
    intact &= text != NULL && strtoll(text + 5, NULL, 10) == large[i].key;
  }
  CHECK(ordered && intact);
  printf("large records: first %" PRId64 " last %" PRId64 "\n", large[0].key, large[299].key);
}

static void linear_search(void) {
  int table[16] = {5, 3, 9};
  size_t count = 3;
  const int wanted = 9, missing = 4;
  CHECK(lfind(&wanted, table, &count, sizeof table[0], compare_ints) == &table[2]);
  CHECK(lfind(&missing, table, &count, sizeof table[0], compare_ints) == NULL);
  int *added = lsearch(&missing, table, &count, sizeof table[0], compare_ints);
  CHECK(added == &table[3] && count == 4 && table[3] == 4);
  CHECK(lsearch(&wanted, table, &count, sizeof table[0], compare_ints) == &table[2] && count == 4);
}

int main(void) {
  integers();
  strings();
  records();
  linear_search();
  return finish();
}
