// Deliberately violates the sans-I/O rule: sans_io_check must reject this tree.
#include <sys/socket.h>
#include <thread>
int draw() {
  return rand();
}
long now_ms() {
  return std::chrono::steady_clock::now().time_since_epoch().count();
}
#include <fstream>
const char* home() {
  return getenv("HOME");
}
