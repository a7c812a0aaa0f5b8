// Deliberately violates the sans-I/O rule: sans_io_check must reject this tree.
#include <thread>
#include <sys/socket.h>
int draw() { return rand(); }
long now_ms() { return std::chrono::steady_clock::now().time_since_epoch().count(); }
