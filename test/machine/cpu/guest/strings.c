/* glibc's string and memory routines (VMX/VSX implementations on POWER8 and POWER9) at every
   alignment and a range of lengths, with results folded into checksums. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIZE 512

static unsigned char a[SIZE + 64], b[SIZE + 64];
static uint64_t checksum;

static void mix(uint64_t value) { checksum = (checksum ^ value) * 0x100000001b3ull; }

static void fill(unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    p[i] = (unsigned char)('a' + (seed >> 16) % 26);
  }
}

int main(void) {
  const char *names[] = {"strlen", "strchr", "strrchr", "memchr", "memcmp", "strcmp", "strncmp", "strcpy",
                         "memcpy", "memmove", "memset", "strstr", "strnlen", "stpcpy", "rawmemchr", "strspn"};
  for (int f = 0; f < 16; f++) {
    checksum = 1469598103934665603ull;
    for (int align = 0; align < 16; align++) {
      for (int length = 0; length < 80; length += (length < 40 ? 1 : 7)) {
        fill(a, (size_t)length + 32, (unsigned)(align * 131 + length));
        fill(b, (size_t)length + 32, (unsigned)(align * 131 + length));
        unsigned char *p = a + align, *q = b + (align * 3) % 16;
        p[length] = 0;
        q[length] = 0;
        if (length > 2) q[length / 2] ^= (unsigned char)(length & 1);
        switch (f) {
          case 0: mix(strlen((char *)p)); break;
          case 1: mix((uint64_t)(strchr((char *)p, 'q') ? strchr((char *)p, 'q') - (char *)p : -1)); break;
          case 2: mix((uint64_t)(strrchr((char *)p, 'e') ? strrchr((char *)p, 'e') - (char *)p : -1)); break;
          case 3: mix((uint64_t)(memchr(p, 'z', (size_t)length) ? (unsigned char *)memchr(p, 'z', (size_t)length) - p : -1)); break;
          case 4: mix((uint64_t)(memcmp(p, q, (size_t)length) > 0) * 2 + (memcmp(p, q, (size_t)length) < 0)); break;
          case 5: mix((uint64_t)(strcmp((char *)p, (char *)q) > 0) * 2 + (strcmp((char *)p, (char *)q) < 0)); break;
          case 6: mix((uint64_t)(strncmp((char *)p, (char *)q, (size_t)length / 2) != 0)); break;
          case 7: strcpy((char *)q + 1, (char *)p); mix(strlen((char *)q + 1) + q[1]); break;
          case 8: memcpy(q + 3, p, (size_t)length); for (int i = 0; i < length + 4; i++) mix(q[i]); break;
          case 9: memmove(p + 5, p, (size_t)length); memmove(p, p + 9, (size_t)length); for (int i = 0; i < length + 10; i++) mix(p[i]); break;
          case 10: memset(p + 1, length, (size_t)length); for (int i = 0; i < length + 2; i++) mix(p[i]); break;
          case 11: mix((uint64_t)(strstr((char *)p, "ab") ? strstr((char *)p, "ab") - (char *)p : -1)); break;
          case 12: mix(strnlen((char *)p, (size_t)(length / 3 + 1))); break;
          case 13: mix((uint64_t)(stpcpy((char *)q, (char *)p) - (char *)q)); break;
          case 14: p[length] = 'Z'; mix((uint64_t)((unsigned char *)rawmemchr(p, 'Z') - p)); break;
          case 15: mix(strspn((char *)p, "abcdefghijklm")); break;
        }
      }
    }
    printf("%s %016llx\n", names[f], (unsigned long long)checksum);
  }
  char *copy = strdup("The quick brown fox jumps over the lazy dog");
  qsort(copy, strlen(copy), 1, (int (*)(const void *, const void *))strcmp);
  printf("%zu %s\n", strlen(copy), strchr(copy, 'T') ? "found" : "missing");
  free(copy);
  return 0;
}
