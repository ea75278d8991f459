// Exits with a status computed from what it received, so that a test reads its arguments and
// environment from the exit code alone: argc, plus the length of argv[1], plus 10 when
// SCHED_TEST=1 is in the environment.
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  const char *flag = getenv("SCHED_TEST");
  int status = argc;
  if (argc > 1) status += (int)strlen(argv[1]);
  if (flag && strcmp(flag, "1") == 0) status += 10;
  return status;
}
