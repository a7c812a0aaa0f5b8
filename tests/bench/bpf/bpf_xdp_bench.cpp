// XDP program cost per packet via BPF_PROG_TEST_RUN `repeat`, with 10 / 100k / 1M IPv4
// entries in the block trie (random /32 and /24, as BpfEnforcer::apply writes them).
// For each size: a pass case (random unblocked sources, the common case) and a drop case
// (sources inside blocked entries); each case runs `--packets` distinct packets, each
// `--repeat` times, and reports the mean of the kernel's per-run ns. Prints JSON.
// Needs root. Goal: cost at 1M <= 1.5 x cost at 10. Also IPv6 (ipv6_results): 10 / 100k
// entries, half /128, 30% /64, 20% /48.
// Usage (root): bpf_xdp_bench [--repeat R] [--packets P] [--entries 10,100000,1000000]
//                             [--ipv6 on|off]
#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <array>
#include <cstdio>
#include <cstring>
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

// Ethernet + IPv6 (next header TCP) from `src` to 2001:db8::1, then 20 bytes of TCP.
std::vector<std::uint8_t> frame6_from(const std::array<std::uint8_t, 16>& src) {
  std::vector<std::uint8_t> b(14 + 40 + 20, 0);
  b[0] = b[6] = 0x02;
  b[11] = 0x01;
  b[12] = 0x86;  // IPv6
  b[13] = 0xdd;
  b[14] = 0x60;    // version 6
  b[14 + 5] = 20;  // payload length
  b[14 + 6] = 6;   // TCP
  b[14 + 7] = 64;  // hop limit
  std::memcpy(&b[14 + 8], src.data(), 16);
  const std::uint8_t dst[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  std::memcpy(&b[14 + 24], dst, 16);
  return b;
}

std::vector<std::vector<std::uint8_t>> frames_from(const std::vector<std::uint32_t>& sources) {
  std::vector<std::vector<std::uint8_t>> out;
  for (std::uint32_t src : sources) out.push_back(frame_from(src));
  return out;
}

CaseResult run_case(int prog, const std::vector<std::vector<std::uint8_t>>& packets,
                    std::uint32_t repeat) {
  CaseResult res;
  double total = 0;
  for (const auto& pkt : packets) {
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
  res.ns_per_packet = total / static_cast<double>(packets.size());
  return res;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint32_t repeat = 10'000;
  std::size_t packets = 100;
  std::vector<std::size_t> sizes = {10, 100'000, 1'000'000};
  bool ipv6 = true;
  for (int i = 1; i + 1 < argc; ++i) {
    std::string a = argv[i];
    if (a == "--repeat") repeat = static_cast<std::uint32_t>(std::stoul(argv[i + 1]));
    if (a == "--packets") packets = std::stoul(argv[i + 1]);
    if (a == "--entries") {  // comma-separated IPv4 sizes, e.g. 10,10000,1000000
      sizes.clear();
      std::string list = argv[i + 1];
      for (std::size_t pos = 0; pos <= list.size();) {
        const std::size_t end = std::min(list.find(',', pos), list.size());
        const std::string item = list.substr(pos, end - pos);
        if (item.empty() || item.find_first_not_of("0123456789") != std::string::npos ||
            std::stoul(item) == 0) {
          std::fprintf(stderr, "bpf_xdp_bench: --entries: '%s' is not a positive count\n",
                       item.c_str());
          return 2;
        }
        sizes.push_back(std::stoul(item));
        pos = end + 1;
      }
    }
    if (a == "--ipv6") ipv6 = std::string(argv[i + 1]) != "off";
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
    auto rules = bench::make_rules(n, wall_now_ms(), mix, /*v4_only=*/true, /*seed=*/n);
    auto t0 = std::chrono::steady_clock::now();
    auto rep = e->apply(rules, wall_now_ms());
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
    auto pass = run_case(prog, frames_from(pass_src), repeat);
    auto drop = run_case(prog, frames_from(drop_src), repeat);
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
  // IPv6: /128, /64 (exact maps) and /48 (trie) rules in random global unicast space.
  nlohmann::json results6 = nlohmann::json::array();
  double pass6_at_10 = 0, drop6_at_10 = 0;
  for (std::size_t n : {std::size_t{10}, std::size_t{100'000}}) {
    if (!ipv6) break;
    sensor::BpfLoaderConfig config;
    config.pin_path = "";
    auto loader = sensor::BpfLoader::load(config);
    if (!loader) return 1;
    auto e = sensor::BpfEnforcer::from_loader(*loader);
    if (!e) return 1;
    std::mt19937_64 rng(n);
    const TimeMs now = wall_now_ms();
    std::vector<sensor::BlockRule> rules;
    for (std::size_t i = 0; i < n; ++i) {
      Prefix p;
      p.family = Family::v6;
      p.len = i % 10 < 5 ? 128 : i % 10 < 8 ? 64 : 48;
      for (auto& b : p.addr) b = static_cast<std::uint8_t>(rng());
      p.addr[0] = 0x20 | (p.addr[0] & 0x1f);
      for (int b = p.len / 8; b < 16; ++b) p.addr[b] = 0;
      rules.push_back({p, Direction::both, i + 1, now + kHour});
    }
    auto rep = e->apply(rules, now);
    if (!rep || rep->applied != n) return 1;
    std::vector<std::vector<std::uint8_t>> pass_pkts, drop_pkts;
    while (pass_pkts.size() < packets) {
      std::array<std::uint8_t, 16> a{};
      for (auto& b : a) b = static_cast<std::uint8_t>(rng());
      a[0] = 0x20 | (a[0] & 0x1f);  // random /48s: a collision with a rule is negligible
      pass_pkts.push_back(frame6_from(a));
    }
    for (std::size_t i = 0; drop_pkts.size() < packets; ++i) {
      const auto& p = rules[(i * 7919) % rules.size()].prefix;
      std::array<std::uint8_t, 16> a{};
      std::copy(p.addr.begin(), p.addr.end(), a.begin());
      for (int b = p.len / 8; b < 16; ++b) a[b] = static_cast<std::uint8_t>(rng());
      drop_pkts.push_back(frame6_from(a));
    }
    auto pass = run_case(loader->xdp_prog_fd(), pass_pkts, repeat);
    auto drop = run_case(loader->xdp_prog_fd(), drop_pkts, repeat);
    if (!pass.ok || !drop.ok || pass.verdict != XDP_PASS || drop.verdict != XDP_DROP) {
      std::fprintf(stderr, "bpf_xdp_bench: unexpected IPv6 verdicts at %zu entries\n", n);
      return 1;
    }
    if (n == 10) {
      pass6_at_10 = pass.ns_per_packet;
      drop6_at_10 = drop.ns_per_packet;
    }
    results6.push_back({{"entries", n},
                        {"pass_ns_per_packet", pass.ns_per_packet},
                        {"drop_ns_per_packet", drop.ns_per_packet},
                        {"pass_ratio_vs_10", pass.ns_per_packet / pass6_at_10},
                        {"drop_ratio_vs_10", drop.ns_per_packet / drop6_at_10}});
  }
  nlohmann::json out{{"benchmark", "bpf_xdp_cost"}, {"repeat", repeat},
                     {"packets_per_case", packets}, {"goal_ratio_1m_vs_10", 1.5},
                     {"results", results},          {"ipv6_results", results6}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
