// Echo server in C with epoll (as tgtd waits): one wake-up's floor outside Node.
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/epoll.h>
#include <unistd.h>
int main(int argc, char** argv) {
  int l = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = {AF_UNIX}; strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1); unlink(a.sun_path);
  if (bind(l, (void*)&a, sizeof a) || listen(l, 1)) { perror("bind"); return 1; }
  for (;;) {
    int fd = accept(l, 0, 0);
    int ep = epoll_create1(0); struct epoll_event ev = {EPOLLIN, {.fd = fd}}; epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    for (;;) {
      struct epoll_event e; if (epoll_wait(ep, &e, 1, -1) < 1) continue;
      char b[64]; ssize_t k = read(fd, b, sizeof b); if (k <= 0) break; write(fd, b, k);
    }
    close(fd); close(ep);
  }
}
