// guest-run: {"stdin": "The quick brown fox\njumps over\n\nthe lazy dog.\n  leading and trailing spaces  \nno newline at the end"}
/* Standard streams: standard input read with getline, getchar, ungetc and fread until EOF;
 * standard output fully buffered on a pipe (setvbuf to line and unbuffered modes and back), written
 * with printf, puts, putchar, fputs and fwrite, including one 192 KiB block (several pipe buffers);
 * standard error unbuffered; fileno, freopen of stdout onto a file and back to the pipe through
 * a duplicate of the descriptor. */
#define _GNU_SOURCE
#include "check.h"
#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>
#include <unistd.h>

static void read_input(void) {
  CHECK_EQ(fileno(stdin), 0);
  const int first = getchar();
  CHECK_EQ(first, 'T');
  CHECK_EQ(ungetc(first, stdin), 'T');
  char *line = NULL;
  size_t capacity = 0;
  ssize_t length;
  int lines = 0, words = 0;
  size_t bytes = 0;
  while ((length = getline(&line, &capacity, stdin)) != -1) {
    lines++;
    bytes += (size_t)length;
    int in_word = 0;
    for (ssize_t i = 0; i < length; i++) {
      if (isspace((unsigned char)line[i])) {
        in_word = 0;
      } else if (!in_word) {
        in_word = 1;
        words++;
      }
    }
    /* Each line reversed and upper-cased, without its newline. */
    const int has_newline = length > 0 && line[length - 1] == '\n';
    printf("%2d [", lines);
    for (ssize_t i = length - has_newline - 1; i >= 0; i--) putchar(toupper((unsigned char)line[i]));
    printf("]%s\n", has_newline ? "" : " (no newline)");
  }
  free(line);
  CHECK(feof(stdin));
  CHECK_EQ(getchar(), EOF);
  unsigned char rest[8];
  CHECK_EQ(fread(rest, 1, sizeof rest, stdin), 0);
  printf("%d lines, %d words, %zu bytes\n", lines, words, bytes);
  CHECK_EQ(lines, 6);
  CHECK_EQ(words, 18);
  CHECK_EQ(bytes, 99);
  fprintf(stderr, "stderr: read %d lines\n", lines);
}

static void buffering_modes(void) {
  CHECK_EQ(fileno(stdout), 1);
  CHECK_EQ(fileno(stderr), 2);
  static char line_buffer[64];
  CHECK_EQ(setvbuf(stdout, line_buffer, _IOLBF, sizeof line_buffer), 0);
  printf("line buffered: ");
  fputs("one line", stdout);
  putchar('\n');
  puts("puts adds a newline");
  CHECK_EQ(setvbuf(stdout, NULL, _IONBF, 0), 0);
  for (int i = 0; i < 5; i++) putchar('0' + i);
  putchar('\n');
  fprintf(stderr, "stderr: unbuffered %d\n", 2);
  CHECK_EQ(setvbuf(stdout, NULL, _IOFBF, 8192), 0);
  printf("fully buffered again\n");
  fflush(stdout);
}

static void large_block(void) {
  static char block[192 * 1024];
  for (size_t i = 0; i < sizeof block; i++) block[i] = (char)('a' + i % 26);
  for (size_t i = 99; i < sizeof block; i += 100) block[i] = '\n';
  block[sizeof block - 1] = '\n';
  CHECK_EQ(fwrite(block, 1, sizeof block, stdout), sizeof block);
  /* And the same through write(2) after a flush: the pipe takes it in pieces. */
  fflush(stdout);
  size_t written = 0;
  while (written < sizeof block) {
    const ssize_t n = write(STDOUT_FILENO, block + written, sizeof block - written);
    CHECK(n > 0);
    if (n <= 0) break;
    written += (size_t)n;
  }
  printf("wrote %zu bytes twice, fnv=%016" PRIx64 "\n", sizeof block, fnv1a(FNV_INIT, block, sizeof block));
}

static void redirection(void) {
  fflush(stdout);
  const int saved = dup(STDOUT_FILENO);
  CHECK(saved >= 0);
  CHECK(freopen("captured.txt", "w", stdout) != NULL);
  printf("this goes to captured.txt\n");
  fprintf(stdout, "and so does this, %d\n", 42);
  fflush(stdout);
  CHECK_EQ(dup2(saved, STDOUT_FILENO), STDOUT_FILENO);
  CHECK_EQ(close(saved), 0);
  clearerr(stdout);
  printf("back on the original standard output\n");
  FILE *captured = fopen("captured.txt", "r");
  char text[128] = "";
  CHECK(fgets(text, sizeof text, captured) != NULL);
  CHECK_STR(text, "this goes to captured.txt\n");
  CHECK_EQ(fclose(captured), 0);
}

int main(void) {
  read_input();
  buffering_modes();
  large_block();
  redirection();
  return finish();
}
