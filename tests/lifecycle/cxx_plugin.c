/* A C program linked with slabby, which needs no C++ runtime of its own
 * (preload/new_slow_runtime.cc):
 * - libstdc++ is not in the process until a C++ module brings it;
 * - with none loaded, a failed operator new (called by its mangled name, as
 *   only C can) aborts with one precise line (checked in a child: SIGABRT
 *   and the message);
 * - a C++ module loaded with RTLD_LOCAL (its libstdc++ outside the global
 *   scope) gets the standard's operator new semantics (cxx_plugin_lib.cc).
 * Usage: cxx_plugin MODULE. Exits 0 on success. */
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int slabby_is_active(void); /* referenced directly: the link must keep slabby */

static int fail(const char* what) {
  fprintf(stderr, "cxx_plugin: %s\n", what);
  return 1;
}

/* Runs operator new(SIZE_MAX / 2) in a child; returns its stderr in buf and
 * its wait status. */
static int new_in_child(char* buf, size_t len, int* status) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    void* (*op_new)(size_t) = (void* (*)(size_t))dlsym(RTLD_DEFAULT, "_Znwm");
    if (op_new == NULL) _exit(3);
    volatile size_t n = SIZE_MAX / 2;
    op_new(n);
    _exit(4); /* operator new returned */
  }
  close(fds[1]);
  size_t got = 0;
  ssize_t r;
  while (got + 1 < len && (r = read(fds[0], buf + got, len - 1 - got)) > 0) got += (size_t)r;
  buf[got] = '\0';
  close(fds[0]);
  if (waitpid(pid, status, 0) != pid) return -1;
  return 0;
}

int main(int argc, char** argv) {
  if (argc != 2) return fail("usage: cxx_plugin MODULE");
  if (!slabby_is_active()) return fail("slabby is not the allocator");
  if (dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_NOLOAD) != NULL)
    return fail("libstdc++ is loaded in a C program: slabby brought it");

  char buf[512];
  int status;
  if (new_in_child(buf, sizeof buf, &status) != 0) return fail("fork/pipe failed");
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT) {
    fprintf(stderr, "cxx_plugin: the child's status is %#x, not SIGABRT; stderr: %s\n", status, buf);
    return 1;
  }
  char want[160];
  snprintf(want, sizeof want,
           "slabby: operator new(%zu) failed and no C++ runtime (libstdc++.so.6, libc++.so.1) "
           "is loaded to throw std::bad_alloc\n",
           (size_t)(SIZE_MAX / 2));
  /* The first line (an emulator may add its own about the signal). */
  if (strncmp(buf, want, strlen(want)) != 0) {
    fprintf(stderr, "cxx_plugin: the child said:\n%swant:\n%s", buf, want);
    return 1;
  }

  void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    fprintf(stderr, "cxx_plugin: dlopen %s: %s\n", argv[1], dlerror());
    return 1;
  }
  if (dlsym(RTLD_DEFAULT, "_ZSt15get_new_handlerv") != NULL)
    return fail("libstdc++ is in the global scope: not the case this tests");
  int (*check)(void) = (int (*)(void))dlsym(lib, "plugin_check");
  if (check == NULL) return fail("no plugin_check in the module");
  if (check() != 0) return fail("the module's checks failed");
  printf("cxx_plugin: ok\n");
  return 0;
}
