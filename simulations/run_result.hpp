// What one policy run measured. Filled by World::run(), turned into the JSON report, CSV time
// series and SVG plots by report.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "simulations/event_queue.hpp"

namespace meshd::sim {

// Latency histogram: 0.1 ms bins up to 20 s, exact values beyond (rare). Memory is fixed,
// so 10,000 nodes x 1,000 claims do not need 10M stored samples.
class LatencyHistogram {
 public:
  static constexpr double kBinMs = 0.1;
  static constexpr std::size_t kBins = 200'000;
  void add(double ms);
  std::uint64_t count() const { return count_; }
  // q in [0, 1]; 0 when empty. Resolution kBinMs (upper edge of the bin).
  double quantile(double q) const;
  double max() const { return max_; }
  // (latency_ms, cumulative fraction) at up to `points` points, for CDF plots.
  std::vector<std::pair<double, double>> cdf(std::size_t points) const;

 private:
  std::vector<std::uint32_t> bins_ = std::vector<std::uint32_t>(kBins, 0);
  std::vector<double> overflow_;
  std::uint64_t count_ = 0;
  double max_ = 0;
};

struct Sample {
  double t_s = 0;
  double harm_rate = 0;                  // benign flows/s denied right now, fleet-wide
  double harm_cum = 0;                   // benign flows denied so far
  double protected_cum = 0;              // of which to protected destinations
  std::uint64_t enforced_benign = 0;     // (node, benign target) pairs enforced
  std::uint64_t enforced_malicious = 0;  // (node, malicious target) pairs enforced
  std::uint64_t enforced_protected = 0;  // (node, protected target) pairs enforced
  std::uint64_t nodes_up = 0;
  std::uint64_t links_up = 0;  // undirected links currently connected
};

struct QuarantineResult {
  std::string origin;
  bool detected = false;  // every honest node quarantined it
  std::uint64_t nodes_quarantined = 0;
  std::uint64_t honest_nodes = 0;
  double p99_ms = 0;  // over honest nodes that quarantined it
  double max_ms = 0;
};

struct RunResult {
  std::string policy;
  double wall_s = 0;
  std::uint64_t events = 0;       // discrete events processed
  std::uint64_t ticks = 0;        // timer events that called a core's tick()
  std::uint64_t stale_ticks = 0;  // timer events superseded by an earlier one (skipped)
  std::uint64_t spin_ticks = 0;   // ticks after which the core's deadline was still <= now

  // Harm (flows denied) and true-positive coverage.
  double harm_total = 0;
  double harm_protected = 0;
  double tp_enforced_ms = 0;    // sum over (honest node, malicious target) of enforced time
  double tp_possible_ms = 0;    // sum of the time they could have been enforced
  LatencyHistogram tp_latency;  // first honest detection -> enforced at a node

  // Delivery of honest valid claims to honest nodes up at issue time.
  std::uint64_t delivery_pairs = 0;
  std::uint64_t delivered = 0;
  LatencyHistogram delivery_latency;
  // The same over every valid claim (adversaries' included).
  std::uint64_t delivery_pairs_all = 0;
  std::uint64_t delivered_all = 0;

  // Messages.
  std::uint64_t claim_envelopes_sent = 0;  // claims carried by Push / RangeResponse
  std::uint64_t messages_sent = 0;         // every core message
  std::uint64_t messages_lost = 0;         // dropped by link loss / partition / down node
  std::uint64_t disconnects = 0;           // peer-scoring disconnects ordered by cores
  std::uint64_t honest_disconnects = 0;    // ... between two honest nodes

  std::vector<QuarantineResult> quarantine;

  // Partition heal: for claims issued before a heal that had not reached a node by the heal,
  // the latest (receipt - heal); all_reached = every such pair was delivered by the end.
  bool had_partition = false;
  double heal_max_ms = 0;
  bool heal_all_reached = true;
  std::uint64_t heal_pairs = 0;

  // Crash-restart: restarts and claims a restarted node caught up with after restart.
  std::uint64_t restarts = 0;
  double restart_catchup_max_ms = 0;

  std::vector<Sample> samples;
  // Core/trust counters summed over nodes (name -> value), for diagnosis.
  std::vector<std::pair<std::string, std::uint64_t>> counters;
};

}  // namespace meshd::sim
