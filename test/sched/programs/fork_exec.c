// Processes and threads: fork a child that execs /exit_args (whose exit code says what it got) and
// wait for it, fork a child that exits at once, then run a thread and join it. Exits with
// 40 + the thread's argument (42) when everything matched, or 100 + the step that went wrong.
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

static int value;

static void *worker(void *arg) {
  value = 40 + (int)(long)arg;
  return 0;
}

static int exit_code_of(pid_t child) {
  int status = 0;
  if (waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

int main(void) {
  pid_t execing = fork();
  if (execing < 0) return 101;
  if (execing == 0) {
    char *argv[] = {"exit_args", "abcdef", 0};
    char *envp[] = {"SCHED_TEST=1", 0};
    execve("/exit_args", argv, envp);
    _exit(99);
  }
  if (exit_code_of(execing) != 2 + 6 + 10) return 102;
  pid_t quick = fork();
  if (quick < 0) return 103;
  if (quick == 0) _exit(7);
  if (exit_code_of(quick) != 7) return 104;
  pthread_t thread;
  if (pthread_create(&thread, 0, worker, (void *)2)) return 105;
  if (pthread_join(thread, 0)) return 106;
  return value;
}
