// Time in the sans-I/O libraries is always passed in by the caller, never read.
#pragma once

#include <cstdint>

namespace meshd {

// Milliseconds since the Unix epoch (wall clock of the caller, or the simulator's virtual
// clock). One unit everywhere: claims carry issued-at in it, blocks carry expires-at in it.
using TimeMs = std::int64_t;
using DurationMs = std::int64_t;

inline constexpr DurationMs kSecond = 1000;
inline constexpr DurationMs kMinute = 60 * kSecond;
inline constexpr DurationMs kHour = 60 * kMinute;

}  // namespace meshd
