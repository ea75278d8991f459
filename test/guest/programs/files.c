/* Files in the working directory through the system calls and through stdio: create (O_CREAT,
 * O_EXCL, O_TRUNC, O_APPEND), write and read back in odd-sized pieces, lseek (SET/CUR/END, holes
 * past the end), pread/pwrite, readv/writev, ftruncate grow and shrink, fstat/stat sizes, dup/dup2/
 * fcntl, rename over an existing file, unlink of an open file, fsync; then fopen modes, fprintf/
 * fscanf, fgets, fseek/ftell, ungetc and fread/fwrite. The files it leaves are compared by the harness. */
#include "check.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static off_t size_of(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? st.st_size : -1;
}

static void descriptors(void) {
  int fd = open("data.bin", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  CHECK(fd >= 3);
  unsigned char block[1000];
  for (int i = 0; i < 1000; i++) block[i] = (unsigned char)(i * 7);
  /* Odd-sized writes that add up to 10,000 bytes. */
  size_t written = 0;
  for (size_t piece = 1; written < 10000; piece = piece * 3 % 997 + 1) {
    const size_t n = written + piece > 10000 ? 10000 - written : piece;
    const size_t start = written % 1000, chunk = n < 1000 - start ? n : 1000 - start;
    CHECK_EQ(write(fd, block + start, chunk), chunk);
    written += chunk;
  }
  CHECK_EQ(close(fd), 0);
  CHECK_EQ(size_of("data.bin"), 10000);

  fd = open("data.bin", O_RDWR);
  unsigned char back[10000];
  size_t got = 0;
  for (ssize_t n; (n = read(fd, back + got, 777)) > 0;) got += (size_t)n;
  CHECK_EQ(got, 10000);
  int same = 1;
  for (size_t i = 0; i < 10000; i++) same &= back[i] == (unsigned char)((i % 1000) * 7);
  CHECK(same);
  CHECK_EQ(read(fd, back, 10), 0); /* end of file */
  CHECK_EQ(lseek(fd, 0, SEEK_CUR), 10000);
  CHECK_EQ(lseek(fd, -10, SEEK_END), 9990);
  CHECK_EQ(lseek(fd, 5, SEEK_CUR), 9995);
  CHECK_EQ(lseek(fd, 12000, SEEK_SET), 12000);
  CHECK_EQ(write(fd, "END", 3), 3); /* leaves a hole of zeros */
  CHECK_EQ(size_of("data.bin"), 12003);
  CHECK_EQ(pread(fd, back, 4, 10998), 4);
  CHECK(back[0] == 0 && back[1] == 0 && back[2] == 0 && back[3] == 0); /* inside the hole */
  CHECK_EQ(pread(fd, back, 3, 12000), 3);
  CHECK(memcmp(back, "END", 3) == 0);
  CHECK_EQ(pwrite(fd, "PW", 2, 100), 2);
  CHECK_EQ(lseek(fd, 0, SEEK_CUR), 12003); /* pwrite leaves the offset alone */
  CHECK_EQ(lseek(fd, -1, SEEK_SET), -1);
  CHECK_EQ(errno, EINVAL);
  CHECK_EQ(ftruncate(fd, 5000), 0);
  CHECK_EQ(size_of("data.bin"), 5000);
  CHECK_EQ(ftruncate(fd, 6000), 0); /* grows with zeros */
  struct stat st;
  CHECK_EQ(fstat(fd, &st), 0);
  CHECK_EQ(st.st_size, 6000);
  CHECK(S_ISREG(st.st_mode));
  CHECK_EQ(st.st_mode & 0777, 0644);
  CHECK_EQ(fsync(fd), 0);
  CHECK_EQ(fdatasync(fd), 0);

  /* Duplicated descriptors share the offset. */
  const int copy = dup(fd);
  CHECK(copy > fd);
  CHECK_EQ(lseek(fd, 42, SEEK_SET), 42);
  CHECK_EQ(lseek(copy, 0, SEEK_CUR), 42);
  CHECK_EQ(dup2(fd, 20), 20);
  CHECK_EQ(lseek(20, 0, SEEK_CUR), 42);
  CHECK_EQ(fcntl(fd, F_GETFD), 0);
  CHECK_EQ(fcntl(fd, F_SETFD, FD_CLOEXEC), 0);
  CHECK_EQ(fcntl(fd, F_GETFD), FD_CLOEXEC);
  CHECK_EQ(fcntl(copy, F_GETFD), 0); /* descriptor flags are per descriptor */
  CHECK_EQ(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
  const int high = fcntl(fd, F_DUPFD, 30);
  CHECK(high >= 30);
  CHECK_EQ(close(high), 0);
  CHECK_EQ(close(20), 0);
  CHECK_EQ(close(copy), 0);
  CHECK_EQ(close(fd), 0);
  CHECK_EQ(close(fd), -1);
  CHECK_EQ(errno, EBADF);
}

static void vectors_and_flags(void) {
  const int fd = open("vectors.txt", O_RDWR | O_CREAT | O_EXCL, 0600);
  CHECK(fd >= 0);
  CHECK_EQ(open("vectors.txt", O_RDWR | O_CREAT | O_EXCL, 0600), -1);
  CHECK_EQ(errno, EEXIST);
  struct iovec out[3] = {{"alpha ", 6}, {"", 0}, {"beta\n", 5}};
  CHECK_EQ(writev(fd, out, 3), 11);
  CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
  char first[4], second[16] = "";
  struct iovec in[2] = {{first, sizeof first}, {second, sizeof second - 1}};
  CHECK_EQ(readv(fd, in, 2), 11);
  CHECK(memcmp(first, "alph", 4) == 0);
  CHECK_STR(second, "a beta\n");
  CHECK_EQ(close(fd), 0);

  const int appender = open("vectors.txt", O_WRONLY | O_APPEND);
  CHECK_EQ(lseek(appender, 0, SEEK_SET), 0);
  CHECK_EQ(write(appender, "gamma\n", 6), 6); /* O_APPEND writes at the end regardless */
  CHECK_EQ(close(appender), 0);
  CHECK_EQ(size_of("vectors.txt"), 17);

  /* rename replaces an existing target; unlink of an open file keeps it readable. */
  int fd2 = open("old-name.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  CHECK_EQ(write(fd2, "renamed\n", 8), 8);
  CHECK_EQ(close(fd2), 0);
  fd2 = open("target.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  CHECK_EQ(write(fd2, "to be replaced\n", 15), 15);
  CHECK_EQ(close(fd2), 0);
  CHECK_EQ(rename("old-name.txt", "target.txt"), 0);
  CHECK_EQ(access("old-name.txt", F_OK), -1);
  CHECK_EQ(errno, ENOENT);
  CHECK_EQ(size_of("target.txt"), 8);
  const int doomed = open("doomed.txt", O_RDWR | O_CREAT | O_TRUNC, 0644);
  CHECK_EQ(write(doomed, "still here", 10), 10);
  CHECK_EQ(unlink("doomed.txt"), 0);
  CHECK_EQ(access("doomed.txt", F_OK), -1);
  char text[16] = "";
  CHECK_EQ(pread(doomed, text, 10, 0), 10);
  CHECK(memcmp(text, "still here", 10) == 0);
  CHECK_EQ(close(doomed), 0);
  CHECK_EQ(open("missing/file", O_RDONLY), -1);
  CHECK_EQ(errno, ENOENT);
  CHECK_EQ(open("data.bin/child", O_RDONLY), -1);
  CHECK_EQ(errno, ENOTDIR);
}

static void streams(void) {
  FILE *f = fopen("report.txt", "w");
  CHECK(f != NULL);
  for (int i = 1; i <= 50; i++) fprintf(f, "line %02d: %d squared is %d, %.3f\n", i, i, i * i, 1.0 / i);
  CHECK_EQ(fclose(f), 0);
  f = fopen("report.txt", "r");
  char line[128];
  int lines = 0;
  long squares = 0;
  while (fgets(line, sizeof line, f)) {
    int n = 0, value = 0, square = 0;
    CHECK_EQ(sscanf(line, "line %d: %d squared is %d", &n, &value, &square), 3);
    lines++;
    squares += square;
  }
  CHECK_EQ(lines, 50);
  CHECK_EQ(squares, 42925);
  CHECK(feof(f) && !ferror(f));
  CHECK_EQ(fseek(f, 5, SEEK_SET), 0);
  CHECK_EQ(ftell(f), 5);
  CHECK_EQ(fgetc(f), '0');
  CHECK_EQ(ungetc('X', f), 'X');
  CHECK_EQ(fgetc(f), 'X');
  CHECK_EQ(fgetc(f), '1');
  rewind(f);
  int number = 0;
  CHECK_EQ(fscanf(f, "line %d", &number), 1);
  CHECK_EQ(number, 1);
  CHECK_EQ(fclose(f), 0);

  f = fopen("report.txt", "a+");
  fputs("appended\n", f);
  CHECK_EQ(fseek(f, 0, SEEK_SET), 0);
  CHECK(fgets(line, sizeof line, f) != NULL);
  CHECK(strncmp(line, "line 01", 7) == 0);
  CHECK_EQ(fclose(f), 0);

  double values[100];
  for (int i = 0; i < 100; i++) values[i] = i * 0.25 - 3;
  f = fopen("values.bin", "wb");
  CHECK_EQ(fwrite(values, sizeof values[0], 100, f), 100);
  CHECK_EQ(fclose(f), 0);
  f = fopen("values.bin", "r+b");
  double back[100];
  CHECK_EQ(fread(back, sizeof back[0], 100, f), 100);
  CHECK(memcmp(back, values, sizeof back) == 0);
  CHECK_EQ(fread(back, 1, 1, f), 0);
  CHECK(feof(f));
  CHECK_EQ(fseek(f, -8, SEEK_END), 0);
  const double last = 1e6;
  CHECK_EQ(fwrite(&last, sizeof last, 1, f), 1);
  CHECK_EQ(fclose(f), 0);
  CHECK(fopen("no/such/dir/file", "r") == NULL);
  CHECK_EQ(errno, ENOENT);
  printf("report.txt %jd bytes, values.bin %jd bytes, data.bin %jd bytes\n", (intmax_t)size_of("report.txt"),
         (intmax_t)size_of("values.bin"), (intmax_t)size_of("data.bin"));
}

int main(void) {
  umask(022);
  descriptors();
  vectors_and_flags();
  streams();
  return finish();
}
