// trust_bench: decide() latency with 100k active claims in one engine, and memory per claim.
// Prints one JSON object. Usage: trust_bench [claims] [claims_per_target] [decides]
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "trust/engine.hpp"

using namespace meshd;
using namespace meshd::trust;

namespace {

// Cheap deterministic usage: a few flows for some targets, like a node's real mix.
class HashUsage : public UsageSource {
 public:
  std::uint64_t flows(const Prefix& p, TimeMs) const override {
    return (p.addr[3] * 2654435761u >> 7) % 4 == 0 ? p.addr[2] % 50 : 0;
  }
};

Prefix target(std::uint32_t i) {
  Prefix p;
  if (i % 4 == 3) {  // a quarter IPv6 /128
    p.family = Family::v6;
    p.len = 128;
    p.addr[0] = 0x20;
    p.addr[1] = 0x01;
    p.addr[2] = 0x0d;
    p.addr[3] = 0xb8;
    for (int b = 0; b < 4; ++b) p.addr[12 + b] = static_cast<std::uint8_t>(i >> (24 - 8 * b));
    return p;
  }
  return Prefix::v4(0x64000000u + i, 32);  // 100.0.0.0 + i
}

// Heap bytes in use: small blocks (uordblks) plus mmap'ed large blocks (hblkhd), which is
// where big vectors live.
std::size_t heap_bytes() {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

double percentile(std::vector<double>& v, double q) {
  std::size_t k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

}  // namespace

int main(int argc, char** argv) {
  const std::uint32_t claims = argc > 1 ? static_cast<std::uint32_t>(std::atoi(argv[1])) : 100000;
  const std::uint32_t per_target = argc > 2 ? static_cast<std::uint32_t>(std::atoi(argv[2])) : 5;
  const int decides = argc > 3 ? std::atoi(argv[3]) : 200000;
  const std::uint32_t targets = std::max(1u, claims / per_target);
  const std::uint32_t origins = 1000, domains = 20;
  const TimeMs t0 = 1'700'000'000'000;

  std::vector<NodeId> names;
  for (std::uint32_t o = 0; o < origins; ++o) names.push_back("node-" + std::to_string(o));

  HashUsage usage;
  Params params;
  LocalContext ctx;
  ctx.self = Origin{"self", "zone-self"};
  ctx.usage = &usage;

  // Baseline cost of an engine with no claims (the simulator holds 10,000 of them).
  std::size_t empty_engine_bytes = 0;
  {
    const std::size_t b0 = heap_bytes();
    std::vector<Engine> many;
    many.reserve(1000);
    for (int i = 0; i < 1000; ++i) many.emplace_back(params, ctx, t0);
    empty_engine_bytes = (heap_bytes() - b0) / 1000;
  }

  const std::size_t before = heap_bytes();
  Engine engine(params, ctx, t0);
  for (std::uint32_t o = 0; o < origins; ++o)
    engine.register_origin(names[o], "zone-" + std::to_string(o % domains), t0);
  const std::size_t registered = heap_bytes();

  // Claims spread over an hour of issue times, each target claimed by `per_target` origins.
  std::mt19937_64 rng(42);
  ClaimFacts c;
  c.detector = "feed:bench";
  c.severity = Severity::high;
  c.direction = Direction::egress;
  c.requested_ttl = 24 * kHour;
  Digest dg{};
  std::vector<std::uint64_t> seq(origins, 0);
  auto start_insert = std::chrono::steady_clock::now();
  TimeMs now = t0;
  std::uint64_t accepted = 0;
  for (std::uint32_t i = 0; i < claims; ++i) {
    std::uint32_t t = i % targets;
    std::uint32_t o = static_cast<std::uint32_t>((t * 7919u + (i / targets) * 104729u) % origins);
    now = t0 + static_cast<TimeMs>(i) * kHour / claims;
    c.origin = Origin{names[o], "zone-" + std::to_string(o % domains)};
    c.seq = ++seq[o];
    c.prefix = target(t);
    c.confidence = 0.5 + 0.5 * static_cast<double>(rng() % 1000) / 1000.0;
    c.issued_at = now;
    for (int b = 0; b < 8; ++b)
      dg[static_cast<std::size_t>(b)] = static_cast<std::uint8_t>(i >> (8 * b));
    auto out = engine.on_claim(c, dg, now);
    accepted += out.status == ClaimStatus::accepted;
    if (i % 1000 == 999) engine.tick(now);  // as the daemon's timer would
  }
  double insert_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_insert).count();
  const std::size_t after = heap_bytes();
  const std::uint64_t active = engine.stats().active_claims;

  std::vector<double> ns;
  ns.reserve(static_cast<std::size_t>(decides));
  std::uint64_t enforce = 0;
  for (int k = 0; k < decides; ++k) {
    Prefix p = target(static_cast<std::uint32_t>(rng() % targets));
    auto s = std::chrono::steady_clock::now();
    Decision d = engine.decide(p, now);
    auto e = std::chrono::steady_clock::now();
    enforce += d.enforce;
    ns.push_back(
        static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(e - s).count()));
  }
  double median_us = percentile(ns, 0.5) / 1000.0;
  double p99_us = percentile(ns, 0.99) / 1000.0;
  double max_us = *std::max_element(ns.begin(), ns.end()) / 1000.0;

  double claim_bytes = static_cast<double>(after - registered);
  std::printf(
      "{\"bench\":\"trust_decide\",\"claims_offered\":%u,\"claims_active\":%llu,"
      "\"claims_accepted\":%llu,\"targets\":%u,\"claims_per_target\":%u,\"origins\":%u,"
      "\"domains\":%u,\"decides\":%d,\"decide_median_us\":%.3f,\"decide_p99_us\":%.3f,"
      "\"decide_max_us\":%.3f,\"enforce_fraction\":%.3f,\"bytes_per_claim\":%.1f,"
      "\"engine_bytes_total\":%zu,\"origin_bytes_total\":%zu,\"on_claim_per_s\":%.0f,"
      "\"blocks_enforced\":%llu,\"pending\":%llu,\"empty_engine_bytes\":%zu}\n",
      claims, static_cast<unsigned long long>(active), static_cast<unsigned long long>(accepted),
      targets, per_target, origins, domains, decides, median_us, p99_us, max_us,
      static_cast<double>(enforce) / decides,
      active ? claim_bytes / static_cast<double>(active) : 0, after - before, registered - before,
      static_cast<double>(claims) / insert_s,
      static_cast<unsigned long long>(engine.stats().active_blocks),
      static_cast<unsigned long long>(engine.stats().pending_blocks), empty_engine_bytes);
  return 0;
}
