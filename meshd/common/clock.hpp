// The process's clocks, for drivers only (daemon, meshctl, sensor, tests). The sans-I/O
// libraries (trust/, meshd/core/) take time as an argument and must never include this header;
// tests/unit/common/sans_io_check.cmake enforces that.
#pragma once

#include <cstdint>

#include "meshd/common/time.hpp"

namespace meshd {

// Wall clock in the project's one time unit: milliseconds since the Unix epoch, shifted by the
// offset set below (0 unless a test asked otherwise).
TimeMs wall_now_ms();

// TEST ONLY (config key node.test_clock_offset_ms): shifts wall_now_ms() and realtime_ns() of
// this process by `offset_ms`, so fault tests can run a daemon whose clock is ahead or behind
// the fleet's. Set once at start-up, before any other thread reads the clock.
void set_wall_clock_offset_ms(TimeMs offset_ms);
TimeMs wall_clock_offset_ms();

// CLOCK_BOOTTIME in ns: the clock of bpf_ktime_get_boot_ns(), which keeps counting across
// suspend, so kernel-enforced expiries computed from it stay right.
std::int64_t boot_time_ns();

// CLOCK_REALTIME in ns, read next to boot_time_ns() to convert kernel timestamps to wall time.
std::int64_t realtime_ns();

}  // namespace meshd
