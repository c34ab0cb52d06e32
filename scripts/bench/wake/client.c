// Ping-pong client over a unix stream socket: 1 byte out, 1 byte back, N times.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <time.h>
int main(int argc, char** argv) {
  int n = atoi(argv[2]);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un srv = {AF_UNIX};
  strncpy(srv.sun_path, argv[1], sizeof srv.sun_path - 1);
  for (int i = 0; connect(fd, (void*)&srv, sizeof srv); i++) { if (i > 100) { perror("connect"); return 1; } usleep(100000); }
  char b = 1; struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < n; i++) {
    if (write(fd, &b, 1) != 1) { perror("write"); return 1; }
    if (read(fd, &b, 1) != 1) { perror("read"); return 1; }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("%d round trips, %.1f us each\n", n, ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / n);
  return 0;
}
