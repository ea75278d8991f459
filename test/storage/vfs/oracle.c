/*
 * The reference side of the VFS differential test: runs the system calls listed on stdin, one per
 * line, with Linux itself (built static for ppc64le and run under qemu-ppc64le, whose system
 * calls the host kernel answers), and prints what each returned.
 *
 * A line is a system call number and up to six arguments, separated by spaces:
 *   123 or -100 or 0x41   an integer
 *   s:TEXT                a pointer to the NUL-terminated string TEXT (no spaces; "s:" is "")
 *   o:N                   a pointer to N zeroed bytes the call may fill
 *   i:HEX                 a pointer to the bytes HEX spells
 *   b:HEX                 as i:HEX, and the call may change them (printed as o:N's are)
 *   r:K                   the value returned by line K (from 0)
 * Each line prints "RESULT ERRNO" (RESULT -1 and ERRNO set on failure), then the hex of every o:N
 * and b:HEX buffer after the call.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_ARGS 6
#define MAX_LINES 4096
#define MAX_LINE 16384

static long results[MAX_LINES];

static unsigned char *hex_bytes(const char *hex) {
  size_t n = strlen(hex) / 2;
  unsigned char *bytes = malloc(n ? n : 1);
  for (size_t k = 0; k < n; k++) sscanf(hex + 2 * k, "%2hhx", &bytes[k]);
  return bytes;
}

int main(void) {
  static char line[MAX_LINE];
  int index = 0;
  /* Descriptors inherited from whatever started this would shift every descriptor number. */
  for (int fd = 3; fd < 32; fd++) close(fd);
  while (index < MAX_LINES && fgets(line, sizeof line, stdin)) {
    long args[MAX_ARGS] = {0};
    unsigned char *outs[MAX_ARGS];
    size_t out_sizes[MAX_ARGS];
    int out_count = 0;
    char *save;
    char *token = strtok_r(line, " \n", &save);
    if (!token) continue;
    long number = strtol(token, NULL, 0);
    for (int i = 0; i < MAX_ARGS && (token = strtok_r(NULL, " \n", &save)); i++) {
      if (strncmp(token, "s:", 2) == 0) {
        args[i] = (long)strdup(token + 2);
      } else if (strncmp(token, "o:", 2) == 0) {
        size_t size = strtoul(token + 2, NULL, 0);
        outs[out_count] = calloc(size ? size : 1, 1);
        out_sizes[out_count] = size;
        args[i] = (long)outs[out_count++];
      } else if (strncmp(token, "i:", 2) == 0) {
        args[i] = (long)hex_bytes(token + 2);
      } else if (strncmp(token, "b:", 2) == 0) {
        outs[out_count] = hex_bytes(token + 2);
        out_sizes[out_count] = strlen(token + 2) / 2;
        args[i] = (long)outs[out_count++];
      } else if (strncmp(token, "r:", 2) == 0) {
        args[i] = results[strtol(token + 2, NULL, 0)];
      } else {
        args[i] = strtol(token, NULL, 0);
      }
    }
    errno = 0;
    long result = syscall(number, args[0], args[1], args[2], args[3], args[4], args[5]);
    int error = result == -1 ? errno : 0;
    results[index++] = result;
    printf("%ld %d", result, error);
    for (int k = 0; k < out_count; k++) {
      putchar(' ');
      for (size_t j = 0; j < out_sizes[k]; j++) printf("%02x", outs[k][j]);
    }
    putchar('\n');
    fflush(stdout);
  }
  return 0;
}
