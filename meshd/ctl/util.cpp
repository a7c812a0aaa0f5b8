#include <sys/stat.h>

#include <ctime>

#include "meshd/ctl/ctl.hpp"

namespace meshd::ctl {

std::string format_time(TimeMs ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000 - (ms % 1000 < 0 ? 1 : 0));
  std::tm tm{};
  if (!::gmtime_r(&secs, &tm)) return std::to_string(ms) + " ms";
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Result<void> ensure_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  if (std::filesystem::is_directory(dir, ec)) return {};
  if (std::filesystem::exists(dir, ec)) {
    return fail("io_error", dir.string() + " exists and is not a directory");
  }
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail("io_error", "cannot create directory " + dir.string() + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);  // key directories: owner only
  return {};
}

}  // namespace meshd::ctl
