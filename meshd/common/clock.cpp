#include "meshd/common/clock.hpp"

#include <time.h>

#include <chrono>

namespace meshd {
namespace {

TimeMs g_offset_ms = 0;

std::int64_t clock_ns(clockid_t id) {
  timespec ts{};
  ::clock_gettime(id, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

TimeMs wall_now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count() + g_offset_ms;
}

void set_wall_clock_offset_ms(TimeMs offset_ms) {
  g_offset_ms = offset_ms;
}

TimeMs wall_clock_offset_ms() {
  return g_offset_ms;
}

std::int64_t boot_time_ns() {
  return clock_ns(CLOCK_BOOTTIME);
}

std::int64_t realtime_ns() {
  return clock_ns(CLOCK_REALTIME) + g_offset_ms * 1'000'000;
}

}  // namespace meshd
