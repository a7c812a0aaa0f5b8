// meshd: parse flags, load config, build the daemon, run. Logic lives in meshd_app.
#include <malloc.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "meshd/app/config.hpp"
#include "meshd/app/daemon.hpp"
#include "meshd/app/enforcement.hpp"
#include "meshd/app/protobuf_log.hpp"
#include "meshd/common/clock.hpp"

namespace {

void setup_logging(const meshd::app::AppConfig& c) {
  auto logger = spdlog::stderr_color_mt("meshd");
  spdlog::set_default_logger(logger);
  if (c.log_format == "json")
    spdlog::set_pattern(
        R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","node":")" + c.node.name + R"(","msg":"%v"})",
        spdlog::pattern_time_type::utc);
  else
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  spdlog::set_level(spdlog::level::from_str(c.log_level));
}

}  // namespace

int main(int argc, char** argv) {
  // A fixed mmap threshold: glibc otherwise raises it to the size of every large block freed
  // (up to 32 MB), after which the doubling vectors of a growing claim set and the transport's
  // burst buffers come from the brk heap, where freed space and untouched capacity stay
  // resident. Fixed, blocks >= 128 KiB are mmapped: never-touched capacity costs no RSS and a
  // freed block goes back to the OS at once. (Single-threaded: one arena, no M_ARENA_MAX.)
  ::mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  CLI::App app{"meshd: peer-to-peer defence mesh daemon"};
  std::string config_path;
  std::string check_path;
  bool print_default = false;
  app.add_option("--config", config_path, "YAML config file (see --print-default-config)");
  app.add_flag("--print-default-config", print_default,
               "print every config key with its default and exit");
  app.add_option("--check-config", check_path, "validate a config file and exit (0 = valid)");
  bool detach = false;
  app.add_flag("--detach", detach,
               "uninstall: remove what meshd keeps in the kernel for this config (BPF links, tc "
               "filters and maps pinned under enforcement.pin_path; the nftables table), then "
               "exit. A normal exit (SIGTERM) or a crash leaves the blocks enforced until they "
               "expire");
  CLI11_PARSE(app, argc, argv);

  if (print_default) {
    std::cout << meshd::app::default_config_yaml();
    return 0;
  }
  if (!check_path.empty()) {
    auto c = meshd::app::load_config_file(check_path);
    if (!c) {
      std::fprintf(stderr, "meshd: %s\n", c.error().message.c_str());
      return 1;
    }
    std::printf("meshd: %s is valid\n", check_path.c_str());
    return 0;
  }
  auto config = config_path.empty() ? meshd::app::parse_config("", "<embedded default>")
                                    : meshd::app::load_config_file(config_path);
  if (!config) {
    std::fprintf(stderr, "meshd: %s\n", config.error().message.c_str());
    return 1;
  }
  setup_logging(*config);
  // libprotobuf would print one ERROR line per hostile frame (e.g. invalid UTF-8 in a string
  // field): counted and rate-limited into our log instead.
  meshd::app::install_protobuf_log_handler();
  if (detach) {
    auto done = meshd::app::detach_enforcement(*config);
    if (!done) {
      std::fprintf(stderr, "meshd: --detach: %s\n", done.error().message.c_str());
      return 1;
    }
    std::printf("meshd: detached: %s\n", done->c_str());
    return 0;
  }
  if (config->node.test_clock_offset_ms != 0) {
    // Test-only (netns fault tests): this daemon's clock runs ahead of or behind the host's.
    meshd::set_wall_clock_offset_ms(config->node.test_clock_offset_ms);
    spdlog::warn("node.test_clock_offset_ms = {}: this daemon's clock is shifted (tests only)",
                 config->node.test_clock_offset_ms);
  }
  auto daemon = meshd::app::Daemon::create(std::move(*config), config_path);
  if (!daemon) {
    spdlog::critical("cannot start: {}", daemon.error().message);
    std::fprintf(stderr, "meshd: cannot start: %s\n", daemon.error().message.c_str());
    return 1;
  }
  return (*daemon)->run();
}
