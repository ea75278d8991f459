// Dies the way its argument says: "segv" stores to an unmapped address (SIGSEGV, core), "abort"
// calls abort() (SIGABRT, core), "term" sends itself SIGTERM (no core).
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The address comes through a volatile so that the compiler cannot see it is bad. */
static volatile unsigned long unmapped = 16;

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  if (strcmp(argv[1], "segv") == 0) *(volatile int *)unmapped = 1;
  if (strcmp(argv[1], "abort") == 0) abort();
  if (strcmp(argv[1], "term") == 0) kill(getpid(), SIGTERM);
  return 1;
}
