// guest-run: {"name": "arguments", "args": ["first", "two words", "", "--flag=value", "ünïcödé", "tab\there", "-"], "env": {"GUEST_ALPHA": "1", "GUEST_EMPTY": "", "GUEST_SPACES": "a b  c", "PATH": "/bin:/usr/bin", "LANG": "C", "ZED": "last=one"}}
// guest-run: {"name": "bare", "args": [], "env": {}}
/* The process's arguments and environment as the kernel laid them out on the initial stack: argc and
 * every argv string (including empty ones and non-ASCII bytes), argv[argc] == NULL, main's envp equal
 * to environ, every variable (sorted, since the order is the launcher's), getenv, and setenv/unsetenv/
 * putenv/clearenv changing it afterwards. */
#define _GNU_SOURCE
#include "check.h"

extern char **environ;

static int compare_strings(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Prints a string with its bytes escaped where they are not printable ASCII. */
static void print_escaped(const char *s) {
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      printf("\\%c", *p);
    else if (*p >= 32 && *p < 127)
      putchar(*p);
    else
      printf("\\x%02x", *p);
  }
  putchar('"');
}

static int count_environment(void) {
  int n = 0;
  while (environ[n]) n++;
  return n;
}

static void print_environment(const char *label) {
  const int n = count_environment();
  char **sorted = malloc(sizeof(char *) * (size_t)(n + 1));
  memcpy(sorted, environ, sizeof(char *) * (size_t)n);
  qsort(sorted, (size_t)n, sizeof sorted[0], compare_strings);
  printf("%s: %d variables\n", label, n);
  for (int i = 0; i < n; i++) {
    printf("  ");
    print_escaped(sorted[i]);
    putchar('\n');
    CHECK(strchr(sorted[i], '=') != NULL);
  }
  free(sorted);
}

int main(int argc, char **argv, char **envp) {
  printf("argc %d\n", argc);
  for (int i = 0; i < argc; i++) {
    printf("argv[%d] ", i);
    print_escaped(argv[i]);
    printf(" (%zu bytes)\n", strlen(argv[i]));
  }
  CHECK(argv[argc] == NULL);
  CHECK(argc >= 1);
  CHECK(envp == environ);
  /* argv strings and environment strings are laid out without overlap. */
  for (int i = 0; i + 1 < argc; i++) CHECK(argv[i] + strlen(argv[i]) < argv[i + 1] || argv[i + 1] < argv[i]);
  print_environment("environment");
  const char *alpha = getenv("GUEST_ALPHA");
  printf("GUEST_ALPHA %s\n", alpha ? alpha : "(unset)");
  CHECK(getenv("GUEST_NOT_SET") == NULL);
  if (argc > 1) {
    CHECK_STR(getenv("GUEST_SPACES"), "a b  c");
    CHECK_STR(getenv("GUEST_EMPTY"), "");
    CHECK_STR(getenv("ZED"), "last=one");
    CHECK_EQ(argc, 8);
    CHECK_STR(argv[3], "");
    CHECK_STR(argv[2], "two words");
  } else {
    CHECK_EQ(count_environment(), 0);
  }
  CHECK_EQ(setenv("GUEST_NEW", "created", 0), 0);
  CHECK_EQ(setenv("GUEST_NEW", "not replaced", 0), 0);
  CHECK_STR(getenv("GUEST_NEW"), "created");
  CHECK_EQ(setenv("GUEST_NEW", "replaced", 1), 0);
  CHECK_STR(getenv("GUEST_NEW"), "replaced");
  static char put[] = "GUEST_PUT=by putenv";
  CHECK_EQ(putenv(put), 0);
  CHECK_STR(getenv("GUEST_PUT"), "by putenv");
  put[10] = 'B'; /* putenv keeps the caller's string itself */
  CHECK_STR(getenv("GUEST_PUT"), "By putenv");
  CHECK_EQ(unsetenv("GUEST_ALPHA"), 0);
  CHECK(getenv("GUEST_ALPHA") == NULL);
  CHECK_EQ(setenv("BAD=NAME", "x", 1), -1);
  print_environment("after changes");
  CHECK_EQ(clearenv(), 0);
  CHECK(getenv("GUEST_NEW") == NULL);
  return finish();
}
