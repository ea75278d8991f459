// guest-run: {"name": "return-0", "args": ["return", "0"], "exit": 0}
// guest-run: {"name": "return-42", "args": ["return", "42"], "exit": 42}
// guest-run: {"name": "exit-255", "args": ["exit", "255"], "exit": 255}
// guest-run: {"name": "exit-256", "args": ["exit", "256"], "exit": 0}
// guest-run: {"name": "exit-minus-1", "args": ["exit", "-1"], "exit": 255}
// guest-run: {"name": "atexit", "args": ["atexit", "7"], "exit": 7}
// guest-run: {"name": "underscore-exit", "args": ["_exit", "3"], "exit": 3}
// guest-run: {"name": "quick-exit", "args": ["quick_exit", "9"], "exit": 9}
// guest-run: {"name": "exit-group-from-depth", "args": ["deep", "100"], "exit": 100}
/* Exit statuses and what happens on the way out: return from main, exit() from deep inside, statuses
 * taken modulo 256 (256 is 0, -1 is 255), atexit handlers in reverse order of registration and on_exit
 * seeing the status, stdio buffers flushed by exit but lost by _exit, quick_exit running only its own
 * handlers. The summary line comes from the last exit handler to run, or is written directly. */
#define _GNU_SOURCE
#include "check.h"
#include <unistd.h>

static int status_wanted;

/* Registered first, so it runs last: the summary is the final line of output. */
static void summary(void) {
  if (guest_failures) {
    printf("FAILED %lu of %lu checks\n", guest_failures, guest_checks);
    fflush(stdout);
    _exit(1);
  }
  printf("ok %lu\n", guest_checks);
}

/* Written with write(2): stdio buffers are not flushed on these paths. */
static void raw_summary(void) {
  char line[64];
  const int n = guest_failures ? snprintf(line, sizeof line, "FAILED %lu of %lu checks\n", guest_failures, guest_checks)
                               : snprintf(line, sizeof line, "ok %lu\n", guest_checks);
  CHECK(write(STDOUT_FILENO, line, (size_t)n) == n);
}

static int handlers_run;
static void handler_one(void) {
  CHECK_EQ(++handlers_run, 3);
  printf("handler one (registered first, runs last)\n");
}
static void handler_two(void) {
  CHECK_EQ(++handlers_run, 2);
  printf("handler two\n");
}
static void handler_three(void) {
  CHECK_EQ(++handlers_run, 1);
  printf("handler three (registered last, runs first)\n");
}
static void on_exit_handler(int status, void *argument) {
  printf("on_exit sees status %d and argument \"%s\"\n", status, (const char *)argument);
  CHECK_EQ(status, status_wanted);
}
static void must_not_run(void) {
  printf("an atexit handler ran on a path that must skip it\n");
  CHECK(0);
}
static void quick_handler(void) { CHECK(write(STDOUT_FILENO, "quick_exit handler\n", 19) == 19); }

/* Non-tail recursion down to the exit call, so that exit runs with 1,000 frames above main. */
static __attribute__((noinline)) int exit_from_depth(int depth, int status) {
  if (depth < 0) return status; /* not taken: only there so that the recursion visibly ends */
  if (depth == 0) exit(status);
  return exit_from_depth(depth - 1, status) + 1;
}

int main(int argc, char **argv) {
  CHECK_EQ(argc, 3);
  if (argc != 3) return finish();
  const char *mode = argv[1];
  status_wanted = atoi(argv[2]);
  printf("mode %s, status %d\n", mode, status_wanted);
  if (strcmp(mode, "return") == 0) {
    atexit(summary);
    return status_wanted;
  }
  if (strcmp(mode, "exit") == 0) {
    atexit(summary);
    exit(status_wanted);
  }
  if (strcmp(mode, "atexit") == 0) {
    atexit(summary);
    CHECK_EQ(atexit(handler_one), 0);
    CHECK_EQ(on_exit(on_exit_handler, "argument"), 0);
    CHECK_EQ(atexit(handler_two), 0);
    CHECK_EQ(atexit(handler_three), 0);
    printf("buffered output, flushed by exit\n");
    exit(status_wanted);
  }
  if (strcmp(mode, "_exit") == 0) {
    atexit(must_not_run);
    fflush(stdout);
    printf("this line stays in the stdio buffer and is lost\n");
    raw_summary();
    _exit(status_wanted);
  }
  if (strcmp(mode, "quick_exit") == 0) {
    atexit(must_not_run);
    CHECK_EQ(at_quick_exit(raw_summary), 0);
    CHECK_EQ(at_quick_exit(quick_handler), 0);
    fflush(stdout);
    quick_exit(status_wanted);
  }
  if (strcmp(mode, "deep") == 0) {
    atexit(summary);
    exit_from_depth(1000, status_wanted);
    CHECK(!"exit returned");
  }
  CHECK(!"unknown mode");
  return finish();
}
