// Benchmark (not a test): floods claims through N meshd/core nodes on a random graph of
// degree ~8 with zero-latency FIFO delivery, and prints one JSON object: message
// deliveries per second, the share of time in trust::Engine, and RSS per node.
// Anti-entropy runs with the default config: claims are `step_ms` apart in virtual time and
// every node is ticked at its deadlines.
// Usage: meshd_core_bench [nodes=2000] [claims=100] [seed=1] [step_ms=100]
#include <malloc.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "meshd/core/node.hpp"
#include "trust/engine.hpp"

using namespace meshd;
using namespace meshd::core;

namespace {

constexpr TimeMs kT0 = 1'700'000'000'000;

// Envelope = 32-byte id, then origin index and seq (what a cheap simulator opener does).
struct BenchOpener final : EventOpener {
  std::vector<std::string>* names;
  EventId event_id(const std::string& e) const override {
    EventId id;
    std::memcpy(id.data(), e.data(), 32);
    return id;
  }
  Result<SignedEvent> open(const std::string& e, TimeMs) override {
    std::uint32_t origin;
    std::uint64_t seq;
    std::memcpy(&origin, e.data() + 32, 4);
    std::memcpy(&seq, e.data() + 36, 8);
    SignedEvent ev;
    ev.kind = EventKind::claim;
    ev.origin = trust::Origin{(*names)[origin], "d" + std::to_string(origin % 20)};
    ev.seq = seq;
    std::memcpy(ev.body_digest.data(), e.data(), 32);
    ev.issued_at = kT0;
    trust::ClaimFacts f;
    f.origin = ev.origin;
    f.seq = seq;
    f.prefix = Prefix::v4(0x0a000000u + origin * 1024u + static_cast<std::uint32_t>(seq), 32);
    f.severity = Severity::high;
    f.confidence = 0.9;
    f.issued_at = kT0;
    f.requested_ttl = kHour;
    f.detector = "bench";
    ev.body = std::move(f);
    return ev;
  }
  Result<SignedEvent> open_evidence(const std::string& e, TimeMs now) override {
    return open(e, now);
  }
};

struct BenchNode {
  BenchOpener opener;
  SplitMix64 rng;
  trust::Engine engine;
  std::optional<Node> holder;
  Node& node;
  BenchNode(std::vector<std::string>* names, std::uint32_t i, const Config& cfg)
      : opener{},
        rng(i + 1),
        engine(trust::Params{},
               trust::LocalContext{
                   trust::Origin{(*names)[i], "d" + std::to_string(i % 20)}, {}, nullptr},
               kT0),
        holder(Node::create((opener.names = names, cfg), engine, opener, rng).value()),
        node(*holder) {}
};

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

long rss_kb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

}  // namespace

int main(int argc, char** argv) {
  const std::uint32_t n = argc > 1 ? static_cast<std::uint32_t>(std::atoi(argv[1])) : 2000;
  const std::uint32_t claims = argc > 2 ? static_cast<std::uint32_t>(std::atoi(argv[2])) : 100;
  const std::uint64_t seed = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 1;
  const TimeMs step = argc > 4 ? std::atoll(argv[4]) : 100;
  std::mt19937_64 rng(seed);
  std::vector<std::string> names;
  for (std::uint32_t i = 0; i < n; ++i) names.push_back("node-" + std::to_string(i));
  const long rss0 = rss_kb();
  Config cfg;
  std::vector<std::unique_ptr<BenchNode>> nodes;
  for (std::uint32_t i = 0; i < n; ++i)
    nodes.push_back(std::make_unique<BenchNode>(&names, i, cfg));
  // Random graph: each node dials 4 distinct others (degree ~8 in total).
  std::set<std::pair<std::uint32_t, std::uint32_t>> edges;
  for (std::uint32_t i = 0; i < n; ++i) {
    int made = 0;
    while (made < 4) {
      std::uint32_t j = static_cast<std::uint32_t>(rng() % n);
      if (j == i || edges.count({std::min(i, j), std::max(i, j)})) continue;
      edges.insert({std::min(i, j), std::max(i, j)});
      ++made;
    }
  }
  struct Item {
    std::uint32_t from, to;
    Message msg;
  };
  std::deque<Item> q;
  Actions a;
  auto absorb = [&](std::uint32_t from) {
    for (Send& s : a.sends)
      q.push_back(Item{from, static_cast<std::uint32_t>(s.peer), std::move(s.message)});
  };
  for (auto [i, j] : edges) {
    a.clear();
    nodes[i]->node.on_peer_up(j, kT0, a);
    a.clear();  // vectors are empty: skip them
    nodes[j]->node.on_peer_up(i, kT0, a);
    a.clear();
  }
  const auto start = std::chrono::steady_clock::now();
  const double cpu0 = cpu_seconds();
  std::uint64_t deliveries = 0;
  TimeMs now = kT0;
  for (std::uint32_t c = 0; c < claims; ++c) {
    const std::uint32_t origin = static_cast<std::uint32_t>(rng() % n);
    std::string bytes(44, '\0');
    const std::uint64_t r1 = rng(), r2 = rng(), seq = c + 1;
    std::memcpy(bytes.data(), &r1, 8);
    std::memcpy(bytes.data() + 8, &r2, 8);
    std::memcpy(bytes.data() + 32, &origin, 4);
    std::memcpy(bytes.data() + 36, &seq, 8);
    (void)seq;
    // Each claim has its own origin-local seq: use seq 1 of a per-claim fresh origin slot.
    const std::uint64_t one = 1;
    std::memcpy(bytes.data() + 36, &one, 8);
    const std::uint32_t org = c % n;  // distinct origins keep seqs contiguous
    std::memcpy(bytes.data() + 32, &org, 4);
    a.clear();
    auto ok = nodes[org]->node.on_local_event(make_envelope(std::move(bytes)), now, a);
    if (!ok) {
      std::fprintf(stderr, "local event failed: %s\n", ok.error().message.c_str());
      return 1;
    }
    absorb(org);
    while (!q.empty()) {
      Item it = std::move(q.front());
      q.pop_front();
      ++deliveries;
      a.clear();
      nodes[it.to]->node.on_message(it.from, it.msg, now, a);
      absorb(it.to);
    }
    now += step;
    for (std::uint32_t i = 0; i < n; ++i) {
      if (nodes[i]->node.next_deadline() > now) continue;
      a.clear();
      nodes[i]->node.tick(now, a);
      absorb(i);
    }
    while (!q.empty()) {
      Item it = std::move(q.front());
      q.pop_front();
      ++deliveries;
      a.clear();
      nodes[it.to]->node.on_message(it.from, it.msg, now, a);
      absorb(it.to);
    }
  }
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // CPU time, not wall time: the build machine is shared, wall time measures the neighbours.
  const double secs = cpu_seconds() - cpu0;
  std::uint64_t received_new = 0, vectors = 0, requests = 0;
  for (auto& nd : nodes) {
    received_new += nd->node.stats().events_new;
    vectors += nd->node.stats().vectors_sent;
    requests += nd->node.stats().requests_sent;
  }
  // Heap split: what the cores hold vs what the trust engines hold.
  const double heap_all = static_cast<double>(mallinfo2().uordblks);
  for (auto& nd : nodes) nd->holder.reset();
  const double heap_engines = static_cast<double>(mallinfo2().uordblks);
  const double pairs = static_cast<double>(n) * claims;
  std::printf(
      "{\"nodes\":%u,\"claims\":%u,\"deliveries\":%llu,\"wall_s\":%.3f,\"cpu_s\":%.3f,\"cpu_"
      "deliveries_per_s\":%.0f,"
      "\"cpu_ns_per_delivery\":%.1f,\"delivered_fraction\":%.6f,\"messages_per_node_per_claim\":%."
      "3f,"
      "\"vectors_sent\":%llu,\"requests_sent\":%llu,\"peak_rss_mb\":%.1f,\"rss_per_node_kb\":%.1f,"
      "\"core_heap_bytes_per_node_event\":%.0f,"
      "\"engine_heap_bytes_per_node_event\":%.0f}\n",
      n, claims, static_cast<unsigned long long>(deliveries), wall, secs, deliveries / secs,
      secs * 1e9 / static_cast<double>(deliveries),
      static_cast<double>(received_new) / (static_cast<double>(n) * claims),
      static_cast<double>(deliveries) / (static_cast<double>(n) * claims),
      static_cast<unsigned long long>(vectors), static_cast<unsigned long long>(requests),
      rss_kb() / 1024.0, static_cast<double>(rss_kb() - rss0) / n,
      (heap_all - heap_engines) / pairs, heap_engines / pairs);
  return 0;
}
