// XDP program cost per packet via BPF_PROG_TEST_RUN `repeat`, with 10 / 100k / 1M IPv4
// entries in the block trie (random /32 and /24, as BpfEnforcer::apply writes them).
// For each size: a pass case (random unblocked sources, the common case) and a drop case
// (sources inside blocked entries); each case runs `--packets` distinct packets, each
// `--repeat` times, and reports the mean of the kernel's per-run ns. Prints JSON.
// Needs root. Goal: cost at 1M <= 1.5 x cost at 10.
#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <cstdio>
#include <string>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "sensor/bpf_enforcer.hpp"
#include "sensor/bpf_loader.hpp"
#include "tests/bench/bpf/bench_common.hpp"

using namespace meshd;

namespace {

std::vector<std::uint8_t> frame_from(std::uint32_t src) {
  std::vector<std::uint8_t> b = {0x02, 0,    0, 0, 0,  0x02, 0x02, 0,    0, 0,  0, 0x01, 0x08,
                                 0x00, 0x45, 0, 0, 40, 0,    1,    0x40, 0, 64, 6, 0,    0};
  for (int i = 3; i >= 0; --i) b.push_back(static_cast<std::uint8_t>(src >> (8 * i)));
  for (std::uint8_t x : {10, 0, 0, 1}) b.push_back(x);  // destination 10.0.0.1
  b.resize(b.size() + 20, 0);                           // TCP header (content irrelevant)
  return b;
}

struct CaseResult {
  double ns_per_packet = 0;
  std::uint32_t verdict = 0;  // of the last packet
  bool ok = true;
};

CaseResult run_case(int prog, const std::vector<std::uint32_t>& sources, std::uint32_t repeat) {
  CaseResult res;
  double total = 0;
  for (std::uint32_t src : sources) {
    auto pkt = frame_from(src);
    bpf_test_run_opts opts{};
    opts.sz = sizeof opts;
    opts.data_in = pkt.data();
    opts.data_size_in = static_cast<std::uint32_t>(pkt.size());
    opts.repeat = repeat;
    if (bpf_prog_test_run_opts(prog, &opts) != 0) {
      res.ok = false;
      return res;
    }
    total += opts.duration;  // mean ns per run over `repeat`
    res.verdict = opts.retval;
  }
  res.ns_per_packet = total / static_cast<double>(sources.size());
  return res;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint32_t repeat = 10'000;
  std::size_t packets = 100;
  std::vector<std::size_t> sizes = {10, 100'000, 1'000'000};
  for (int i = 1; i + 1 < argc; ++i) {
    std::string a = argv[i];
    if (a == "--repeat") repeat = static_cast<std::uint32_t>(std::stoul(argv[i + 1]));
    if (a == "--packets") packets = std::stoul(argv[i + 1]);
  }
  bench::quiet_logs();
  nlohmann::json results = nlohmann::json::array();
  double pass_at_10 = 0, drop_at_10 = 0;
  for (std::size_t n : sizes) {
    sensor::BpfLoaderConfig config;
    config.pin_path = "";
    auto loader = sensor::BpfLoader::load(config);
    if (!loader) {
      std::fprintf(stderr, "bpf_xdp_bench: %s\n", loader.error().message.c_str());
      return 1;
    }
    auto e = sensor::BpfEnforcer::from_loader(*loader);
    if (!e) return 1;
    bench::RuleMix mix;
    auto rules = bench::make_rules(n, bench::wall_now(), mix, /*v4_only=*/true, /*seed=*/n);
    auto t0 = std::chrono::steady_clock::now();
    auto rep = e->apply(rules, bench::wall_now());
    const double fill_s = bench::seconds_since(t0);
    if (!rep || rep->applied != n) {
      std::fprintf(stderr, "bpf_xdp_bench: filling %zu entries failed\n", n);
      return 1;
    }
    // Pass sources: random addresses not inside any rule (checked exactly).
    std::unordered_set<std::uint32_t> hosts, nets;
    for (const auto& r : rules) {
      std::uint32_t a = (std::uint32_t{r.prefix.addr[0]} << 24) | (r.prefix.addr[1] << 16) |
                        (r.prefix.addr[2] << 8) | r.prefix.addr[3];
      (r.prefix.len == 32 ? hosts : nets).insert(r.prefix.len == 32 ? a : a & 0xffffff00u);
    }
    std::mt19937 rng(42);
    std::vector<std::uint32_t> pass_src, drop_src;
    while (pass_src.size() < packets) {
      std::uint32_t a = rng();
      if (!hosts.count(a) && !nets.count(a & 0xffffff00u)) pass_src.push_back(a);
    }
    for (std::size_t i = 0; drop_src.size() < packets; ++i) {
      const auto& p = rules[(i * 7919) % rules.size()].prefix;
      std::uint32_t a =
          (std::uint32_t{p.addr[0]} << 24) | (p.addr[1] << 16) | (p.addr[2] << 8) | p.addr[3];
      drop_src.push_back(p.len == 32 ? a : a | (rng() & 0xff));
    }
    const int prog = loader->xdp_prog_fd();
    auto pass = run_case(prog, pass_src, repeat);
    auto drop = run_case(prog, drop_src, repeat);
    if (!pass.ok || !drop.ok || pass.verdict != XDP_PASS || drop.verdict != XDP_DROP) {
      std::fprintf(stderr, "bpf_xdp_bench: unexpected verdicts at %zu entries\n", n);
      return 1;
    }
    if (n == sizes.front()) {
      pass_at_10 = pass.ns_per_packet;
      drop_at_10 = drop.ns_per_packet;
    }
    results.push_back({{"entries", n},
                       {"fill_s", fill_s},
                       {"pass_ns_per_packet", pass.ns_per_packet},
                       {"drop_ns_per_packet", drop.ns_per_packet},
                       {"pass_ratio_vs_10", pass.ns_per_packet / pass_at_10},
                       {"drop_ratio_vs_10", drop.ns_per_packet / drop_at_10}});
  }
  nlohmann::json out{{"benchmark", "bpf_xdp_cost"},
                     {"repeat", repeat},
                     {"packets_per_case", packets},
                     {"goal_ratio_1m_vs_10", 1.5},
                     {"results", results}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
