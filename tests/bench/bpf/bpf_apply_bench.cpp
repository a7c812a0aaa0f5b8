// Installs N prefixes (default 100,000; the nftables benchmark's mix) with ONE
// BpfEnforcer::apply into fresh, unpinned block maps and prints the timings as JSON; also
// re-times, lists and removes them, and compares with one bpf_map_update_elem per entry
// (what apply() would cost without BPF_MAP_UPDATE_BATCH). Needs root. Goal: apply <= 1 s.
#include <bpf/bpf.h>
#include <sys/resource.h>

#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "sensor/bpf_enforcer.hpp"
#include "sensor/bpf_loader.hpp"
#include "tests/bench/bpf/bench_common.hpp"

using namespace meshd;

namespace {
// CPU time (user + system) of this process: on a busy 2-core machine wall time mostly
// measures the other processes; CPU time is what the install itself costs.
double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}
}  // namespace

int main(int argc, char** argv) {
  std::size_t n = 100'000;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--prefixes") n = std::stoul(argv[i + 1]);
  }
  bench::quiet_logs();
  bench::RuleMix mix;
  auto rules = bench::make_rules(n, wall_now_ms(), mix);

  sensor::BpfLoaderConfig config;
  config.pin_path = "";
  auto loader = sensor::BpfLoader::load(config);
  if (!loader) {
    std::fprintf(stderr, "bpf_apply_bench: %s\n", loader.error().message.c_str());
    return 1;
  }
  auto e = sensor::BpfEnforcer::from_loader(*loader);
  if (!e) {
    std::fprintf(stderr, "bpf_apply_bench: %s\n", e.error().message.c_str());
    return 1;
  }

  const double cpu0 = cpu_seconds();
  auto t0 = std::chrono::steady_clock::now();
  auto rep = e->apply(rules, wall_now_ms());
  const double apply_s = bench::seconds_since(t0);
  const double apply_cpu_s = cpu_seconds() - cpu0;
  if (!rep) {
    std::fprintf(stderr, "bpf_apply_bench: apply failed: %s\n", rep.error().message.c_str());
    return 1;
  }

  t0 = std::chrono::steady_clock::now();
  auto listed = e->list(wall_now_ms());
  const double list_s = bench::seconds_since(t0);

  for (auto& r : rules) r.expires_at += kHour;
  t0 = std::chrono::steady_clock::now();
  auto retime = e->apply(rules, wall_now_ms());
  const double retime_s = bench::seconds_since(t0);

  std::vector<Prefix> all;
  all.reserve(rules.size());
  for (const auto& r : rules) all.push_back(r.prefix);
  t0 = std::chrono::steady_clock::now();
  auto removed = e->remove(all);
  const double remove_s = bench::seconds_since(t0);
  const auto stats = e->detailed_stats();

  // The same entries, one syscall each, into a second set of fresh maps.
  auto raw = sensor::BpfLoader::load(config);
  if (!raw) return 1;
  const std::uint64_t boot_expiry = static_cast<std::uint64_t>(boot_time_ns()) + 3600e9;
  t0 = std::chrono::steady_clock::now();
  std::size_t loop_errors = 0;
  for (const auto& r : rules) {
    meshd_block_value v{boot_expiry, r.rule_id, MESHD_DIR_MASK, r.prefix.len};
    int rc;
    if (r.prefix.family == Family::v4) {
      auto k = sensor::to_v4_key(r.prefix);
      rc = bpf_map_update_elem(raw->block_v4_fd(), &k, &v, BPF_ANY);
    } else {
      auto k = sensor::to_v6_key(r.prefix);
      rc = bpf_map_update_elem(raw->block_v6_fd(), &k, &v, BPF_ANY);
    }
    loop_errors += rc != 0;
  }
  const double loop_s = bench::seconds_since(t0);

  nlohmann::json out{
      {"benchmark", "bpf_install"},
      {"prefixes", n},
      {"mix", {{"v4_host", mix.v4_host}, {"v4_24", mix.v4_24}, {"v6", mix.v6}}},
      {"applied", rep->applied},
      {"batch_updates", stats.batch_updates},
      {"apply_s", apply_s},
      {"apply_cpu_s", apply_cpu_s},
      {"goal_apply_s", 1.0},
      {"list_s", list_s},
      {"listed_rules", listed ? listed->size() : 0},
      {"retime_all_s", retime_s},
      {"retime_ok", retime.has_value()},
      {"remove_all_s", remove_s},
      {"removed", removed ? *removed : 0},
      {"one_syscall_per_entry_s", loop_s},
      {"one_syscall_per_entry_errors", loop_errors},
  };
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
