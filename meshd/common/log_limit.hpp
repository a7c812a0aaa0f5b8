// At most one log line per interval for one kind of warning: a flood of them (hostile peers,
// slow or surplus clients) must not flood the log. The warnings in between are counted, and
// the next line written says how many were left out.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace meshd {

class LogLimit {
 public:
  using Clock = std::chrono::steady_clock;
  explicit LogLimit(Clock::duration interval = std::chrono::seconds(10)) : interval_(interval) {}

  // nullopt: leave this one out. Else write it, with the number left out since the last.
  std::optional<std::uint64_t> admit(Clock::time_point now = Clock::now()) {
    if (any_ && now - last_ < interval_) {
      ++left_out_;
      return std::nullopt;
    }
    any_ = true;
    last_ = now;
    return std::exchange(left_out_, 0);
  }

  // " (and N more)" for a line admit() let through with N left out before it; "" for N = 0.
  static std::string and_more(std::uint64_t n) {
    return n ? " (and " + std::to_string(n) + " more)" : std::string();
  }

 private:
  Clock::duration interval_;
  bool any_ = false;
  Clock::time_point last_{};
  std::uint64_t left_out_ = 0;
};

}  // namespace meshd
