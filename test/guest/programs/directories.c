/* Directories under the working directory: mkdir (nested, EEXIST), readdir listings sorted by name
 * (opendir/readdir over getdents64, and scandir with alphasort) including "." and "..", stat of files
 * and directories, rename of files and of whole directories, chdir/fchdir with relative paths and
 * getcwd's last component, rmdir (ENOTEMPTY, ENOTDIR), unlink (EISDIR), and a tree left behind for
 * the harness to compare. */
#define _GNU_SOURCE
#include "check.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static void write_file(const char *path, const char *text) {
  const int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  CHECK(fd >= 0);
  CHECK_EQ(write(fd, text, strlen(text)), strlen(text));
  CHECK_EQ(close(fd), 0);
}

static int compare_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Prints a directory's entries sorted by name, with their type, and returns how many there were. */
static int list(const char *path) {
  DIR *dir = opendir(path);
  CHECK(dir != NULL);
  if (!dir) return -1;
  char *names[256];
  int count = 0;
  for (struct dirent *entry; (entry = readdir(dir)) != NULL && count < 256;) {
    char *name = malloc(strlen(entry->d_name) + 3);
    const char kind = entry->d_type == DT_DIR ? 'd' : entry->d_type == DT_REG ? 'f' : '?';
    sprintf(name, "%s %c", entry->d_name, kind);
    names[count++] = name;
  }
  CHECK_EQ(closedir(dir), 0);
  qsort(names, (size_t)count, sizeof names[0], compare_names);
  printf("%s:", path);
  for (int i = 0; i < count; i++) {
    printf(" [%s]", names[i]);
    free(names[i]);
  }
  printf("\n");
  return count;
}

static void build_tree(void) {
  CHECK_EQ(mkdir("tree", 0755), 0);
  CHECK_EQ(mkdir("tree", 0755), -1);
  CHECK_EQ(errno, EEXIST);
  CHECK_EQ(mkdir("tree/a", 0755), 0);
  CHECK_EQ(mkdir("tree/a/deep", 0755), 0);
  CHECK_EQ(mkdir("tree/a/deep/deeper", 0700), 0);
  CHECK_EQ(mkdir("tree/b", 0755), 0);
  CHECK_EQ(mkdir("tree/missing/child", 0755), -1);
  CHECK_EQ(errno, ENOENT);
  write_file("tree/README", "a tree of directories\n");
  write_file("tree/a/one.txt", "one\n");
  write_file("tree/a/two.txt", "two\n");
  write_file("tree/a/deep/deeper/bottom.txt", "the bottom\n");
  char name[32];
  for (int i = 0; i < 40; i++) {
    snprintf(name, sizeof name, "tree/b/file-%02d", (i * 17) % 40);
    write_file(name, name + 7);
  }
  CHECK_EQ(list("tree"), 5);
  CHECK_EQ(list("tree/a"), 5);
  CHECK_EQ(list("tree/b"), 42);
  struct stat st;
  CHECK_EQ(stat("tree/a/deep", &st), 0);
  CHECK(S_ISDIR(st.st_mode));
  CHECK_EQ(st.st_mode & 0777, 0755);
  CHECK_EQ(stat("tree/a/deep/deeper", &st), 0);
  CHECK_EQ(st.st_mode & 0777, 0700);
  CHECK_EQ(stat("tree/README", &st), 0);
  CHECK(S_ISREG(st.st_mode) && st.st_size == 22);
  CHECK_EQ(stat("tree/nothing", &st), -1);
  CHECK_EQ(errno, ENOENT);
  CHECK_EQ(lstat("tree/a/one.txt", &st), 0);
  CHECK(S_ISREG(st.st_mode));
}

static int no_dots(const struct dirent *entry) { return entry->d_name[0] != '.'; }

static void rename_and_remove(void) {
  CHECK_EQ(rename("tree/a/one.txt", "tree/b/moved.txt"), 0);
  CHECK_EQ(rename("tree/a/deep", "tree/relocated"), 0);
  CHECK_EQ(access("tree/relocated/deeper/bottom.txt", R_OK), 0);
  CHECK_EQ(rmdir("tree/relocated"), -1);
  CHECK_EQ(errno, ENOTEMPTY);
  CHECK_EQ(rmdir("tree/README"), -1);
  CHECK_EQ(errno, ENOTDIR);
  CHECK_EQ(unlink("tree/b"), -1);
  CHECK_EQ(errno, EISDIR);
  for (int i = 0; i < 40; i += 2) {
    char name[32];
    snprintf(name, sizeof name, "tree/b/file-%02d", i);
    CHECK_EQ(unlink(name), 0);
  }
  CHECK_EQ(unlink("tree/b/file-00"), -1);
  CHECK_EQ(errno, ENOENT);
  struct dirent **entries = NULL;
  const int count = scandir("tree/b", &entries, no_dots, alphasort);
  CHECK_EQ(count, 21);
  printf("scandir tree/b:");
  for (int i = 0; i < count; i++) {
    printf(" %s", entries[i]->d_name);
    free(entries[i]);
  }
  printf("\n");
  free(entries);
  CHECK_EQ(mkdir("tree/empty", 0755), 0);
  CHECK_EQ(rmdir("tree/empty"), 0);
  CHECK_EQ(rmdir("tree/empty"), -1);
  CHECK_EQ(errno, ENOENT);
  /* A directory renamed over an empty directory replaces it. */
  CHECK_EQ(mkdir("tree/placeholder", 0755), 0);
  CHECK_EQ(rename("tree/a", "tree/placeholder"), 0);
  CHECK_EQ(access("tree/placeholder/two.txt", F_OK), 0);
  list("tree");
}

static const char *last_component(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash && slash[1] ? slash + 1 : path;
}

static void working_directory(void) {
  char here[4096], there[4096];
  CHECK(getcwd(here, sizeof here) != NULL);
  const int home = open(".", O_RDONLY | O_DIRECTORY);
  CHECK(home >= 0);
  CHECK_EQ(chdir("tree/relocated/deeper"), 0);
  CHECK(getcwd(there, sizeof there) != NULL);
  printf("working directory ends in %s\n", last_component(there));
  CHECK_STR(last_component(there), "deeper");
  CHECK_EQ(access("bottom.txt", R_OK), 0);
  write_file("../written-from-inside.txt", "relative path\n");
  CHECK_EQ(chdir("../.."), 0);
  CHECK(getcwd(there, sizeof there) != NULL);
  CHECK_STR(last_component(there), "tree");
  CHECK_EQ(chdir("README"), -1);
  CHECK_EQ(errno, ENOTDIR);
  CHECK_EQ(fchdir(home), 0);
  CHECK(getcwd(there, sizeof there) != NULL);
  CHECK_STR(there, here);
  CHECK_EQ(close(home), 0);
  /* Directory-relative calls. */
  const int tree = open("tree", O_RDONLY | O_DIRECTORY);
  CHECK_EQ(mkdirat(tree, "via-at", 0755), 0);
  const int fd = openat(tree, "via-at/file", O_WRONLY | O_CREAT, 0644);
  CHECK(fd >= 0);
  CHECK_EQ(write(fd, "openat\n", 7), 7);
  CHECK_EQ(close(fd), 0);
  CHECK_EQ(renameat(tree, "via-at/file", tree, "via-at/renamed"), 0);
  struct stat st;
  CHECK_EQ(fstatat(tree, "via-at/renamed", &st, 0), 0);
  CHECK_EQ(st.st_size, 7);
  CHECK_EQ(unlinkat(tree, "b/file-01", 0), 0);
  CHECK_EQ(unlinkat(tree, "b", AT_REMOVEDIR), -1);
  CHECK_EQ(errno, ENOTEMPTY);
  CHECK_EQ(close(tree), 0);
  list("tree/via-at");
}

int main(void) {
  umask(022);
  build_tree();
  rename_and_remove();
  working_directory();
  return finish();
}
