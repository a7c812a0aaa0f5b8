// Threat-feed detector: matches connect destinations against IP/CIDR lists on disk.
//
// Accepted file formats (one entry per line, mixed freely):
//   203.0.113.7                 plain address (a host prefix)
//   198.51.100.0/24             CIDR (host bits are masked and counted, feeds are sloppy)
//   192.0.2.0/24 ; SBL123       Spamhaus DROP style: text after ';' is the entry's label
//   2001:db8::/32 # note        text after '#' is the label as well
//   ; comment   /   # comment   whole-line comments; blank lines are ignored
// Bad lines are reported as "file:line: reason", skipped and counted; the rest still load.
// The file is re-read when its mtime, size or inode change (poll with maybe_reload), so an
// updater that rewrites it in place or renames a new file over it is both picked up.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "meshd/common/result.hpp"
#include "sensor/detectors/detection.hpp"
#include "sensor/detectors/prefix_matcher.hpp"
#include "sensor/events.hpp"

namespace meshd::sensor {

struct FeedEntry {
  Prefix prefix;
  std::string label;  // "SBL123", a comment, or empty
};

struct ParsedFeed {
  std::vector<FeedEntry> entries;
  // "file:line: reason" for every bad line, at most `max_errors` of them (bad_lines counts all).
  std::vector<std::string> errors;
  std::size_t bad_lines = 0;
  std::size_t masked = 0;    // entries whose host bits were cleared
  std::size_t comments = 0;  // comment and blank lines
};

struct FeedParseOptions {
  // Entries broader than this are rejected as bad lines: a corrupt or hostile feed line like
  // "0.0.0.0/0" must not turn into a claim on the whole Internet.
  int min_len_v4 = 8;
  int min_len_v6 = 16;
  std::size_t max_errors = 100;
};

// Pure parser; `source` names the file in error messages.
ParsedFeed parse_feed(std::string_view text, std::string_view source,
                      const FeedParseOptions& options = {});

struct FeedOptions {
  std::string name;  // detector id becomes "feed:<name>"
  // DROP-style lists name networks that should neither be reached nor heard from.
  Direction direction = Direction::both;
  Severity severity = Severity::high;
  double confidence = 0.9;
  // stat() the file at most this often; maybe_reload calls in between are free.
  DurationMs poll_interval_ms = 5 * kSecond;
  // The same feed prefix produces at most one detection per this interval (a process
  // retrying its C2 server must not flood the daemon).
  DurationMs repeat_suppress_ms = kMinute;
  FeedParseOptions parse;
};

struct FeedStats {
  std::uint64_t loads = 0;          // successful (re)loads
  std::uint64_t load_failures = 0;  // unreadable file; previous entries stay active
  std::uint64_t bad_lines = 0;      // total over all loads
  std::uint64_t masked = 0;         // total over all loads
  std::uint64_t entries = 0;        // in the active table
  std::uint64_t lookups = 0;
  std::uint64_t matches = 0;
  std::uint64_t detections = 0;
  std::uint64_t suppressed = 0;  // matches not reported because of repeat_suppress_ms
};

class ThreatFeed {
 public:
  ThreatFeed(std::string path, FeedOptions options);

  // Loads the file if it is new or changed (checked at most every poll_interval_ms).
  // Returns true when a new table was installed. On a read error the previous table stays.
  Result<bool> maybe_reload(TimeMs now);
  // Unconditional (re)load.
  Result<void> load();

  struct Match {
    Prefix prefix;  // the feed entry (longest match)
    std::string_view label;
  };
  std::optional<Match> match(const Prefix& address) const;

  // Detection for a connect whose destination is on the feed, unless suppressed.
  std::optional<Detection> check(const ConnectEvent& event, const WorkloadIdentity& identity);

  // Errors of the most recent load, "file:line: reason".
  const std::vector<std::string>& last_errors() const { return last_errors_; }
  const std::string& path() const { return path_; }
  const FeedStats& stats() const { return stats_; }

 private:
  struct FileStamp {
    std::int64_t mtime_ns = -1;
    std::int64_t size = -1;
    std::uint64_t inode = 0;
    bool operator==(const FileStamp&) const = default;
  };

  std::string path_;
  FeedOptions options_;
  PrefixMatcher matcher_;
  std::vector<std::string> labels_;
  std::vector<std::string> last_errors_;
  FileStamp stamp_;
  TimeMs last_poll_ = 0;
  bool polled_once_ = false;
  std::unordered_map<Prefix, TimeMs, PrefixHash> last_reported_;
  mutable FeedStats stats_;
};

}  // namespace meshd::sensor
