// What the daemon records only to be looked at: the claim propagation histograms, the
// per-peer and per-origin gauges of /metrics, the event cursor and the summaries of the event
// stream that /ui shows. Owned by Daemon::Impl (member `obs`), touched on its io thread only.
//
// Hooks (observability.cpp), each one call from the daemon's event loop:
//   observe_actions()  after every action list is applied: accepted claims (propagation
//                      latency, "claim_received" events), received proofs, new quarantines;
//   observe_second()   from housekeeping: the once-a-second summary of claims not listed;
//   append_observability_metrics()  the series above, in /metrics.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "meshd/app/daemon.hpp"
#include "meshd/app/metrics.hpp"
#include "meshd/core/node.hpp"

namespace meshd::app {

// Upper bounds (seconds) of meshd_claim_propagation_seconds: a push crosses a mesh in
// milliseconds, an anti-entropy fetch takes up to its period, a node that was down catches
// up minutes later.
inline const std::vector<double> kPropagationBuckets{
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800};

// At most this many labelled meshd_trust series (the lowest trust first): a fleet of
// thousands must not make every node export thousands of series.
inline constexpr std::size_t kMaxTrustSeries = 256;

// Received claims listed one by one in the event stream per second; the rest of a burst is
// summarised in one "claims_received" event (the histogram still sees every claim).
inline constexpr int kClaimEventsPerSecond = 50;

// Block changes logged one by one (info) per second; the rest of a burst (a peer flooding
// valid claims: one line per accepted claim on every node) is counted and summarised in one
// line a second. Every change is still in the event stream (block_enforce / block_lift) and
// in meshd_blocks_enforced_total / meshd_blocks_lifted_total.
inline constexpr int kBlockLinesPerSecond = 20;

struct Observability {
  Histogram propagation_push{kPropagationBuckets};
  Histogram propagation_sync{kPropagationBuckets};
  std::uint64_t claims_in_push = 0;
  std::uint64_t claims_in_sync = 0;
  std::uint64_t proofs_in = 0;
  // Accepted claims whose issued_at lies ahead of this node's clock (skew between nodes):
  // observed as 0 s and counted here.
  std::uint64_t propagation_clock_skew = 0;
  // Event log sequence: the n-th event ever recorded has id n (1-based); the log keeps the
  // newest ones, so the first kept has id events_total - events.size() + 1.
  std::uint64_t events_total = 0;
  int claim_event_tokens = kClaimEventsPerSecond;
  std::uint64_t claim_events_summarised = 0;  // not listed since the last summary
  int block_line_tokens = kBlockLinesPerSecond;
  std::uint64_t block_lines_summarised = 0;  // block changes not logged since the last summary
  std::set<std::string> quarantined;         // origins quarantined at the last look
  std::uint64_t quarantine_epoch = 0;        // engine proofs + core quarantines at that look
};

void observe_actions(Daemon::Impl& d, const core::Actions& actions, std::int64_t now);
void observe_second(Daemon::Impl& d, std::int64_t now);
void append_observability_metrics(const Daemon::Impl& d, MetricsWriter& w);

}  // namespace meshd::app
