// guest-levels: O0 O2 O3-power9
/* glibc's string routines at every alignment 0..15 and every length 0..300: strlen, strnlen,
 * strcmp/strncmp (pairs of alignments, differences at the start, middle and end, bytes compared
 * unsigned), strchr/strrchr/strchrnul, strcpy/stpcpy/strncpy (zero padding)/strcat/strncat, then
 * strstr, strspn/strcspn/strpbrk, strtok_r, strdup/strndup, strcasecmp, and strings that end on the
 * last byte of a page followed by an inaccessible page. */
#define _GNU_SOURCE
#include "check.h"
#include <inttypes.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_LENGTH 300
#define BUFFER (MAX_LENGTH + 64)
#define GUARD 0xee

static unsigned long failures_reported;

static void check_case(int passed, const char *what, size_t a, size_t b, size_t length) {
  if (!passed && failures_reported++ < 20) fprintf(stderr, "%s: %zu/%zu length %zu\n", what, a, b, length);
  CHECK(passed);
}

/* Printable, never zero, never the searched-for '#'. */
static char letter(size_t i) { return (char)('a' + (i * 7 + i / 26) % 26); }

static void fill_string(char *s, size_t length) {
  for (size_t i = 0; i < length; i++) s[i] = letter(i);
  s[length] = '\0';
}

static int covered(size_t a, size_t b, size_t length) { return length <= 64 || b == (a * 7) % 16; }

static void lengths(void) {
  static char buffer[BUFFER] __attribute__((aligned(64)));
  for (size_t length = 0; length <= MAX_LENGTH; length++) {
    for (size_t align = 0; align < 16; align++) {
      char *const s = buffer + align;
      fill_string(s, length);
      /* Bytes after the terminator must not matter. */
      for (size_t i = length + 1; i < length + 17 && align + i < BUFFER; i++) s[i] = 'x';
      check_case(strlen(OPAQUE(s)) == length, "strlen", align, 0, length);
      check_case(strnlen(s, OPAQUE(length / 2)) == length / 2, "strnlen short", align, 0, length);
      check_case(strnlen(s, OPAQUE(length + 5)) == length, "strnlen long", align, 0, length);
    }
  }
}

static int sign(int x) { return (x > 0) - (x < 0); }

static void comparisons(void) {
  static char a[BUFFER], b[BUFFER];
  uint64_t digest = FNV_INIT;
  for (size_t length = 0; length <= MAX_LENGTH; length++) {
    for (size_t sa = 0; sa < 16; sa++) {
      for (size_t sb = 0; sb < 16; sb++) {
        if (!covered(sa, sb, length)) continue;
        fill_string(a + sa, length);
        fill_string(b + sb, length);
        check_case(strcmp(a + sa, b + sb) == 0 && strncmp(a + sa, b + sb, OPAQUE(length + 3)) == 0, "strcmp equal", sa,
                   sb, length);
        if (length == 0) continue;
        const size_t positions[3] = {0, length / 2, length - 1};
        for (int p = 0; p < 3; p++) {
          const size_t at = positions[p];
          a[sa + at] = (char)0xc3; /* above every ASCII letter when compared unsigned */
          const int forward = strcmp(a + sa, b + sb), backward = strcmp(b + sb, a + sa);
          check_case(forward > 0 && backward < 0, "strcmp order", sa, sb, length);
          check_case(strncmp(a + sa, b + sb, OPAQUE(at)) == 0, "strncmp prefix", sa, sb, length);
          check_case(strncmp(a + sa, b + sb, OPAQUE(at + 1)) > 0, "strncmp difference", sa, sb, length);
          /* A shorter string is less than a longer one with the same prefix. */
          a[sa + at] = '\0';
          check_case(strcmp(a + sa, b + sb) < 0, "strcmp prefix", sa, sb, length);
          digest = fnv1a_u64(digest, (uint64_t)(sign(forward) + 2) << 8 | (uint64_t)(sign(backward) + 2));
          a[sa + at] = letter(at);
        }
      }
    }
  }
  printf("strcmp fnv=%016" PRIx64 "\n", digest);
}

static void character_searches(void) {
  static char buffer[BUFFER];
  for (size_t length = 0; length <= MAX_LENGTH; length++) {
    for (size_t align = 0; align < 16; align++) {
      char *const s = buffer + align;
      fill_string(s, length);
      check_case(strchr(s, '#') == NULL && strrchr(s, '#') == NULL, "strchr absent", align, 0, length);
      check_case(strchrnul(s, '#') == s + length, "strchrnul absent", align, 0, length);
      check_case(strchr(s, '\0') == s + length && strrchr(s, '\0') == s + length, "strchr nul", align, 0, length);
      if (length == 0) continue;
      const size_t first = length / 3, last = length - 1;
      s[first] = '#';
      s[last] = '#';
      check_case(strchr(s, OPAQUE('#')) == s + first, "strchr", align, first, length);
      check_case(strrchr(s, OPAQUE('#')) == s + last, "strrchr", align, last, length);
      check_case(strchrnul(s, OPAQUE('#')) == s + first, "strchrnul", align, first, length);
      check_case(index(s, '#') == s + first && rindex(s, '#') == s + last, "index", align, first, length);
    }
  }
}

static void copies(void) {
  static char source[BUFFER], target[BUFFER + 64];
  for (size_t length = 0; length <= MAX_LENGTH; length++) {
    for (size_t sa = 0; sa < 16; sa++) {
      for (size_t ta = 0; ta < 16; ta++) {
        if (!covered(sa, ta, length)) continue;
        fill_string(source + sa, length);
        memset(target, GUARD, sizeof target);
        char *const to = target + 16 + ta;
        check_case(strcpy(to, source + sa) == to && strcmp(to, source + sa) == 0 &&
                       (unsigned char)to[length + 1] == GUARD && (unsigned char)to[-1] == GUARD,
                   "strcpy", sa, ta, length);
        check_case(stpcpy(to, source + sa) == to + length, "stpcpy", sa, ta, length);
        /* strncpy pads with zeros up to n and does not terminate a string of n or more bytes. */
        const size_t n = OPAQUE(length / 2 + 8);
        memset(target, GUARD, sizeof target);
        strncpy(to, source + sa, n);
        int padded = memcmp(to, source + sa, length < n ? length : n) == 0;
        for (size_t i = length; i < n; i++) padded &= to[i] == '\0';
        padded &= (unsigned char)to[n] == GUARD;
        check_case(padded, "strncpy", sa, ta, length);
      }
    }
  }
  char joined[64] = "abc";
  CHECK(strcat(joined, "defg") == joined);
  CHECK_STR(joined, "abcdefg");
  strncat(joined, "hijklmn", OPAQUE(3));
  CHECK_STR(joined, "abcdefghij");
  strncat(joined, "", 5);
  CHECK_STR(joined, "abcdefghij");
  char *const duplicate = strdup(joined);
  CHECK_STR(duplicate, "abcdefghij");
  free(duplicate);
  char *const prefix = strndup(joined, OPAQUE(4));
  CHECK_STR(prefix, "abcd");
  free(prefix);
}

static void substrings(void) {
  static char haystack[BUFFER + 16];
  for (size_t length = 1; length <= MAX_LENGTH; length++) {
    for (size_t align = 0; align < 16; align += (length > 64 ? 5 : 1)) {
      char *const s = haystack + align;
      for (size_t i = 0; i < length; i++) s[i] = "aab"[i % 3];
      s[length] = '\0';
      check_case(strstr(s, "aaa") == NULL, "strstr absent", align, 0, length);
      if (length >= 3) check_case(strstr(s, "aba") == (length >= 4 ? s + 1 : NULL), "strstr", align, 0, length);
      check_case(strstr(s, "") == s, "strstr empty", align, 0, length);
      if (length >= 5) {
        memcpy(s + length - 5, "xyzzy", 5);
        check_case(strstr(s, "xyzzy") == s + length - 5, "strstr end", align, 0, length);
        check_case(strpbrk(s, "zy") == s + length - 4, "strpbrk", align, 0, length);
        check_case(strspn(s, "ab") == length - 5, "strspn", align, 0, length);
        check_case(strcspn(s, "yx") == length - 5, "strcspn", align, 0, length);
      }
    }
  }
  CHECK(strcasestr("Hello World", "WORLD") != NULL);
  CHECK(memmem("abcabcabd", 9, "abd", 3) != NULL);
}

static void tokens_and_case(void) {
  char text[] = "  alpha,beta;;gamma , delta,,";
  char *save = NULL;
  char *token = strtok_r(text, " ,;", &save);
  printf("tokens:");
  int count = 0;
  while (token) {
    printf(" [%s]", token);
    count++;
    token = strtok_r(NULL, " ,;", &save);
  }
  printf("\n");
  CHECK_EQ(count, 4);
  char fields[] = "a::b:";
  char *cursor = fields;
  int separated = 0;
  printf("strsep:");
  for (char *field; (field = strsep(&cursor, ":")) != NULL; separated++) printf(" [%s]", field);
  printf("\n");
  CHECK_EQ(separated, 4);
  CHECK(strcasecmp("HeLLo", "hello") == 0);
  CHECK(strcasecmp("abc", "ABD") < 0);
  CHECK(strncasecmp("ABCdef", "abcXYZ", 3) == 0);
  CHECK(strncasecmp("ABCdef", "abcXYZ", 4) < 0);
  CHECK(strcoll("abc", "abd") < 0);
  char transformed[16];
  CHECK_EQ(strxfrm(transformed, "xyz", sizeof transformed), 3);
  CHECK(strverscmp("file9", "file10") < 0);
}

/* Strings whose terminator is the last byte of a readable page. */
static void page_edges(void) {
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  char *const region = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(region != MAP_FAILED);
  if (region == MAP_FAILED) return;
  CHECK(mprotect(region + page, page, PROT_NONE) == 0);
  char *const end = region + page;
  static char copy[MAX_LENGTH + 1];
  for (size_t length = 0; length <= MAX_LENGTH; length++) {
    char *const s = end - length - 1;
    fill_string(s, length);
    check_case(strlen(s) == length, "page strlen", 0, 0, length);
    check_case(strnlen(s, page) == length, "page strnlen", 0, 0, length);
    check_case(strchr(s, '#') == NULL && strrchr(s, 'a' + 26) == NULL, "page strchr", 0, 0, length);
    check_case(strcpy(copy, s) == copy && strcmp(copy, s) == 0, "page strcpy", 0, 0, length);
    /* n stops at the terminator: with n >= 16 and a short string two bytes before the inaccessible
     * page, glibc 2.36's strncmp faults under qemu-ppc64le 7.2 (its page-cross path). */
    check_case(strncmp(s, copy, OPAQUE(length + 1)) == 0, "page strncmp", 0, 0, length);
    check_case(strstr(s, "##") == NULL, "page strstr", 0, 0, length);
    check_case(strspn(s, "abcdefghijklmnopqrstuvwxyz") == length, "page strspn", 0, 0, length);
  }
  CHECK(munmap(region, 2 * page) == 0);
}

int main(void) {
  lengths();
  comparisons();
  character_searches();
  copies();
  substrings();
  tokens_and_case();
  page_edges();
  return finish();
}
