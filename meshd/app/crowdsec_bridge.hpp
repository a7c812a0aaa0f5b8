// State of the CrowdSec bouncer inside the daemon (sensor.crowdsec): the LAPI client, the
// table of active decisions, the local-only blocks it holds on top of the engine's, the queue
// of claims waiting for the signing rate, and its counters. The logic lives in crowdsec.cpp
// (Daemon::Impl::crowdsec_*); this header only gives daemon_impl.hpp a complete type.
#pragma once

#include "meshd/common/asio.hpp"

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "meshd/common/prefix.hpp"
#include "meshd/common/time.hpp"
#include "sensor/crowdsec_client.hpp"
#include "sensor/detectors/crowdsec.hpp"

namespace meshd::app {

struct CrowdsecBridge {
  CrowdsecBridge(boost::asio::io_context& io, sensor::CrowdsecClientOptions client_options,
                 sensor::CrowdsecOptions options)
      : client(io, std::move(client_options)), table(std::move(options)), timer(io) {}

  sensor::CrowdsecClient client;
  sensor::CrowdsecDecisions table;
  boost::asio::steady_timer timer;
  bool need_full = true;       // next poll asks for startup=true (first, and after any failure)
  TimeMs last_full = 0;        // the last full answer
  TimeMs full_at = 0;          // a full pull is due then (0: none), after a bulk delta
  bool cleaned_stale = false;  // own claims of decisions deleted while meshd was down retracted
  int failures = 0;            // consecutive
  std::string last_error;

  // Local blocks (every ban decision, whatever its origin) by prefix -> expiry. They are
  // merged with the engine's blocks: an engine lift of a prefix still held here re-installs
  // it with this expiry, and dropping one here keeps what the engine enforces.
  std::map<Prefix, TimeMs> local;

  // Claims wait here for the signing rate (max_claims_per_min).
  std::deque<Prefix> claim_queue;
  std::set<Prefix> queued;
  std::deque<TimeMs> signed_at;  // within the last minute
  std::map<Prefix, TimeMs> requeued_at;
  TimeMs last_sweep = 0;

  std::set<std::string> logged_kinds;              // one log line per skipped kind
  std::map<std::string, std::uint64_t> polls;      // by result
  std::map<std::string, std::uint64_t> decisions;  // by result
  double last_batch_seconds = 0;                   // answer received -> kernel updated
  std::uint64_t last_batch_size = 0;
};

}  // namespace meshd::app
