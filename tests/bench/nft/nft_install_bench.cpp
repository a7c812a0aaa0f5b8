// Installs N prefixes (default 100,000: mixed IPv4 /32 and /24 plus some IPv6 /64 and
// /128) with ONE NftEnforcer::apply call inside a throwaway network namespace, and prints
// the timings as one JSON object. The namespace dies with the process, table and all.
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

#include <spdlog/sinks/null_sink.h>
#include <nlohmann/json.hpp>

#include "meshd/common/clock.hpp"
#include "sensor/nft_enforcer.hpp"

using namespace meshd;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// CPU seconds (user + system) of this process: the kernel's nf_tables work runs in our
// process context, so this is the install cost independent of other load on the machine.
double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t n = 100'000;
  Direction dir = Direction::both;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--prefixes") n = std::stoul(argv[i + 1]);
    if (std::string(argv[i]) == "--direction") {
      auto d = parse_direction(argv[i + 1]);
      if (!d) {
        std::fprintf(stderr, "nft_install_bench: --direction egress|ingress|both\n");
        return 2;
      }
      dir = *d;
    }
  }
  if (::unshare(CLONE_NEWNET) != 0) {
    std::fprintf(stderr, "nft_install_bench: unshare(CLONE_NEWNET) failed (%s); run as root\n",
                 std::strerror(errno));
    return 2;
  }
  std::mt19937_64 rng(1);
  std::vector<sensor::BlockRule> rules;
  rules.reserve(n);
  const TimeMs now = wall_now_ms();
  std::size_t v4_host = 0, v4_24 = 0, v6 = 0;
  for (std::size_t i = 0; i < n; ++i) {
    sensor::BlockRule r;
    r.rule_id = i + 1;
    r.direction = dir;
    r.expires_at = now + kHour + static_cast<TimeMs>(rng() % kHour);
    const auto kind = i % 10;
    if (kind < 6) {  // 60% IPv4 hosts
      r.prefix = Prefix::v4(static_cast<std::uint32_t>(rng()), 32);
      ++v4_host;
    } else if (kind < 9) {  // 30% IPv4 /24s
      r.prefix = Prefix::v4(static_cast<std::uint32_t>(rng()), 24);
      ++v4_24;
    } else {  // 10% IPv6: /64 networks and /128 hosts in 2001:db8::/32
      Prefix p;
      p.family = Family::v6;
      p.len = (i / 10) % 2 ? 64 : 128;
      p.addr = {0x20, 0x01, 0x0d, 0xb8};
      for (int b = 4; b < 16; ++b) p.addr[b] = static_cast<std::uint8_t>(rng());
      if (p.len == 64)
        for (int b = 8; b < 16; ++b) p.addr[b] = 0;
      r.prefix = p;
      ++v6;
    }
    rules.push_back(r);
  }
  auto quiet =
      std::make_shared<spdlog::logger>("bench", std::make_shared<spdlog::sinks::null_sink_st>());
  sensor::NftOptions opt;
  opt.table = "meshd-bench";
  auto t0 = std::chrono::steady_clock::now();
  auto e = sensor::NftEnforcer::create(opt, wall_now_ms(), quiet);
  if (!e) {
    std::fprintf(stderr, "nft_install_bench: %s\n", e.error().message.c_str());
    return 1;
  }
  const double create_s = seconds_since(t0);

  t0 = std::chrono::steady_clock::now();
  const double cpu0 = cpu_seconds();
  auto rep = (*e)->apply(rules, wall_now_ms());
  const double apply_s = seconds_since(t0);
  const double apply_cpu_s = cpu_seconds() - cpu0;
  if (!rep) {
    std::fprintf(stderr, "nft_install_bench: apply failed: %s\n", rep.error().message.c_str());
    return 1;
  }
  const auto counters_after_apply = (*e)->counters();

  t0 = std::chrono::steady_clock::now();
  auto listed = (*e)->list(wall_now_ms());
  const double list_s = seconds_since(t0);

  // Re-timing every rule (all expiries +1 h) is a delete+add of every element, one batch.
  for (auto& r : rules) r.expires_at += kHour;
  t0 = std::chrono::steady_clock::now();
  auto retime = (*e)->apply(rules, wall_now_ms());
  const double retime_s = seconds_since(t0);

  std::vector<Prefix> all;
  all.reserve(rules.size());
  for (const auto& r : rules) all.push_back(r.prefix);
  t0 = std::chrono::steady_clock::now();
  auto removed = (*e)->remove(all);
  const double remove_s = seconds_since(t0);

  nlohmann::json out{
      {"benchmark", "nft_install"},
      {"prefixes", n},
      {"mix", {{"v4_host", v4_host}, {"v4_24", v4_24}, {"v6", v6}}},
      {"direction", std::string(to_string(dir))},
      {"applied", rep->applied},
      {"kernel_elements_added", counters_after_apply.elements_added},
      {"batches", counters_after_apply.batches},
      {"destroy_supported", (*e)->kernel_has_destroy()},
      {"create_table_s", create_s},
      {"apply_s", apply_s},
      {"apply_cpu_s", apply_cpu_s},
      {"list_s", list_s},
      {"listed_rules", listed ? listed->size() : 0},
      {"retime_all_s", retime_s},
      {"retime_ok", retime.has_value()},
      {"remove_all_s", remove_s},
      {"removed", removed ? *removed : 0},
  };
  std::printf("%s\n", out.dump().c_str());
  (void)(*e)->destroy();
  return 0;
}
