// Catches its own signals: SIGUSR1 raised while unblocked runs its handler at once; SIGUSR2 raised
// while blocked stays pending (sigpending shows it) and runs when unblocked; a nanosleep comes
// back. Exits with the number of handlers that ran (2), or 100 + the step that went wrong.
#include <signal.h>
#include <time.h>

static volatile int handled;

static void on_signal(int signal) {
  if (signal == SIGUSR1 || signal == SIGUSR2) handled++;
}

int main(void) {
  struct sigaction action = {.sa_handler = on_signal};
  sigemptyset(&action.sa_mask);
  if (sigaction(SIGUSR1, &action, 0) || sigaction(SIGUSR2, &action, 0)) return 101;
  raise(SIGUSR1);
  if (handled != 1) return 102;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR2);
  if (sigprocmask(SIG_BLOCK, &set, 0)) return 103;
  raise(SIGUSR2);
  if (handled != 1) return 104;
  sigset_t pending;
  if (sigpending(&pending) || !sigismember(&pending, SIGUSR2)) return 105;
  if (sigprocmask(SIG_UNBLOCK, &set, 0)) return 106;
  struct timespec pause = {0, 1000000};
  if (nanosleep(&pause, 0)) return 107;
  return handled;
}
