// guest-run: {"stdin": "from a pipe\n"}
/* System calls failing the way Linux fails them, each errno checked and its strerror text printed:
 * bad descriptors, missing paths, existing paths, wrong file types, a directory opened for writing,
 * lseek on a pipe, ioctl terminal queries on non-terminals (ENOTTY), invalid arguments, unsupported
 * calls surfacing as ENOSYS through syscall(), and identity calls that cannot fail. */
#define _GNU_SOURCE
#include "check.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <termios.h>
#include <unistd.h>

#define EXPECT_ERRNO(call, expected)                                                                    \
  do {                                                                                                  \
    errno = 0;                                                                                          \
    const long result_ = (long)(call);                                                                  \
    const int errno_ = errno;                                                                           \
    printf("%-44s -> %ld, errno %d (%s)\n", #call, result_, errno_, strerror(errno_));                  \
    CHECK_EQ(result_, -1);                                                                              \
    check_eq_at((unsigned long long)errno_, (unsigned long long)(expected), #call, __FILE__, __LINE__); \
  } while (0)

int main(void) {
  umask(022);
  char buffer[16];
  CHECK_EQ(mkdir("a-directory", 0755), 0);
  const int file = open("a-file", O_RDWR | O_CREAT | O_TRUNC, 0644);
  CHECK(file >= 0);
  EXPECT_ERRNO(read(1000, buffer, 1), EBADF);
  EXPECT_ERRNO(write(-1, "x", 1), EBADF);
  EXPECT_ERRNO(close(999), EBADF);
  EXPECT_ERRNO(fcntl(555, F_GETFD), EBADF);
  EXPECT_ERRNO(dup2(file, -3), EBADF);
  EXPECT_ERRNO(open("does-not-exist", O_RDONLY), ENOENT);
  EXPECT_ERRNO(open("does/not/exist", O_RDONLY), ENOENT);
  EXPECT_ERRNO(open("a-file/below", O_RDONLY), ENOTDIR);
  EXPECT_ERRNO(open("a-directory", O_WRONLY), EISDIR);
  EXPECT_ERRNO(open("a-file", O_RDONLY | O_DIRECTORY), ENOTDIR);
  EXPECT_ERRNO(open("a-file", O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);
  EXPECT_ERRNO(open("", O_RDONLY), ENOENT);
  EXPECT_ERRNO(mkdir("a-directory", 0755), EEXIST);
  EXPECT_ERRNO(mkdir("a-file", 0755), EEXIST);
  EXPECT_ERRNO(rmdir("a-file"), ENOTDIR);
  EXPECT_ERRNO(rmdir("."), EINVAL);
  EXPECT_ERRNO(unlink("a-directory"), EISDIR);
  EXPECT_ERRNO(unlink("nothing-here"), ENOENT);
  EXPECT_ERRNO(rename("nothing-here", "anything"), ENOENT);
  EXPECT_ERRNO(rename("a-directory", "a-file"), ENOTDIR);
  EXPECT_ERRNO(rename("a-file", "a-directory"), EISDIR);
  EXPECT_ERRNO(chdir("a-file"), ENOTDIR);
  EXPECT_ERRNO(read(open("a-directory", O_RDONLY), buffer, sizeof buffer), EISDIR);
  EXPECT_ERRNO(lseek(file, -5, SEEK_SET), EINVAL);
  EXPECT_ERRNO(lseek(file, 0, 12345), EINVAL);
  EXPECT_ERRNO(lseek(STDIN_FILENO, 0, SEEK_CUR), ESPIPE);
  EXPECT_ERRNO(ftruncate(file, -1), EINVAL);
  EXPECT_ERRNO(access("nothing-here", F_OK), ENOENT);
  EXPECT_ERRNO(readlink("a-file", buffer, sizeof buffer), EINVAL);
  struct termios terminal;
  EXPECT_ERRNO(tcgetattr(file, &terminal), ENOTTY);
  EXPECT_ERRNO(tcgetattr(STDOUT_FILENO, &terminal), ENOTTY);
  EXPECT_ERRNO(ioctl(STDIN_FILENO, TIOCGWINSZ, buffer), ENOTTY);
  CHECK(!isatty(STDIN_FILENO) && !isatty(STDOUT_FILENO) && !isatty(STDERR_FILENO) && !isatty(file));
  EXPECT_ERRNO(syscall(100000), ENOSYS);
  EXPECT_ERRNO(fcntl(file, 98765), EINVAL);
  /* Reading stdin (a pipe) still works after the failed lseek. */
  const ssize_t got = read(STDIN_FILENO, buffer, sizeof buffer - 1);
  CHECK_EQ(got, 12);
  buffer[got > 0 ? got : 0] = '\0';
  printf("stdin: %s", buffer);
  struct utsname name;
  CHECK_EQ(uname(&name), 0);
  printf("uname: %s %s\n", name.sysname, name.machine);
  CHECK_STR(name.sysname, "Linux");
  CHECK_STR(name.machine, "ppc64le");
  CHECK(getpid() > 0 && getppid() >= 0 && gettid() == getpid());
  CHECK(getuid() == geteuid() && getgid() == getegid());
  printf("strerror:");
  for (int e = 1; e <= 40; e++) printf(" %d=%s;", e, strerror(e));
  printf("\n");
  errno = EACCES;
  perror("perror says");
  CHECK_EQ(close(file), 0);
  return finish();
}
