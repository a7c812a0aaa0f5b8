#include "meshd/app/protobuf_log.hpp"

#include <google/protobuf/stubs/logging.h>
#include <spdlog/spdlog.h>

#include <mutex>
#include <string>

namespace meshd::app {
namespace {

namespace pb = google::protobuf;

struct State {
  std::mutex mu;
  std::chrono::milliseconds interval{std::chrono::seconds(10)};
  bool any_logged = false;
  std::chrono::steady_clock::time_point last_logged{};
  std::uint64_t held_back = 0;  // suppressed since the last line written
  ProtobufLogStats stats;
};

State& state() {
  static State s;
  return s;
}

spdlog::level::level_enum to_spdlog(pb::LogLevel level) {
  switch (level) {
    case pb::LOGLEVEL_INFO:
      return spdlog::level::info;
    case pb::LOGLEVEL_WARNING:
      return spdlog::level::warn;
    default:
      return spdlog::level::err;
  }
}

void handle(pb::LogLevel level, const char* filename, int line, const std::string& message) {
  State& s = state();
  std::uint64_t held_back = 0;
  {
    std::lock_guard lock(s.mu);
    const auto now = std::chrono::steady_clock::now();
    // FATAL is always written: libprotobuf aborts right after it.
    if (level != pb::LOGLEVEL_FATAL && s.any_logged && now - s.last_logged < s.interval) {
      ++s.stats.suppressed;
      ++s.held_back;
      return;
    }
    ++s.stats.logged;
    s.any_logged = true;
    s.last_logged = now;
    held_back = s.held_back;
    s.held_back = 0;
  }
  if (held_back > 0)
    spdlog::log(to_spdlog(level), "libprotobuf ({}:{}): {} ({} more held back since the last line)",
                filename, line, message, held_back);
  else
    spdlog::log(to_spdlog(level), "libprotobuf ({}:{}): {}", filename, line, message);
}

}  // namespace

void install_protobuf_log_handler(std::chrono::milliseconds interval) {
  {
    std::lock_guard lock(state().mu);
    state().interval = interval;
  }
  pb::SetLogHandler(&handle);
}

ProtobufLogStats protobuf_log_stats() {
  std::lock_guard lock(state().mu);
  return state().stats;
}

}  // namespace meshd::app
