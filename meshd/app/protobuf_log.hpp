// libprotobuf's own log lines, routed to the daemon's logger and rate-limited.
//
// libprotobuf logs an ERROR line itself for some inputs it refuses, e.g. "String field
// 'meshd.v1.Claim.origin' contains invalid UTF-8 data when parsing a protocol buffer" for every
// frame a peer sends with invalid UTF-8 in a string field. By default it writes each one to
// stderr, so a hostile peer could flood the log. The daemon installs this handler at start:
// each message is counted (meshd_protobuf_log_messages_total), and at most one line per
// interval reaches spdlog, naming how many were held back since the last one. The parse itself
// still fails, and the caller still counts and reports the refused input as before.
#pragma once

#include <chrono>
#include <cstdint>

namespace meshd::app {

struct ProtobufLogStats {
  std::uint64_t logged = 0;      // messages written to the log
  std::uint64_t suppressed = 0;  // messages counted but not written (rate limit)
};

// Replaces libprotobuf's log handler (process-wide; call at start, before other threads parse).
// Calling it again only changes the interval.
void install_protobuf_log_handler(std::chrono::milliseconds interval = std::chrono::seconds(10));

// Counts since the process started (all threads).
ProtobufLogStats protobuf_log_stats();

}  // namespace meshd::app
