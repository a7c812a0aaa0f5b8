#include "sensor/detectors/threat_feed.hpp"

#include "meshd/common/errno_text.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace meshd::sensor {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

ParsedFeed parse_feed(std::string_view text, std::string_view source,
                      const FeedParseOptions& options) {
  ParsedFeed out;
  std::size_t line_no = 0;
  auto bad = [&](std::string reason) {
    ++out.bad_lines;
    if (out.errors.size() < options.max_errors)
      out.errors.push_back(std::string(source) + ":" + std::to_string(line_no) + ": " + reason);
  };
  while (!text.empty()) {
    ++line_no;
    auto nl = text.find('\n');
    std::string_view line = trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (line.empty() || line.front() == ';' || line.front() == '#') {
      ++out.comments;
      continue;
    }
    auto end = line.find_first_of(" \t;#");
    std::string_view token = line.substr(0, end);
    std::string_view rest =
        end == std::string_view::npos ? std::string_view{} : trim(line.substr(end));
    std::string label;
    if (!rest.empty()) {
      if (rest.front() != ';' && rest.front() != '#') {
        bad("unexpected text '" + std::string(rest) + "' after '" + std::string(token) +
            "' (one entry per line; use ';' or '#' for comments)");
        continue;
      }
      label = std::string(trim(rest.substr(1)));
    }
    auto strict = Prefix::parse(token);
    auto prefix = strict ? strict : Prefix::parse_masking(token);
    if (!prefix) {
      bad(prefix.error().message);
      continue;
    }
    const int min_len = prefix->family == Family::v4 ? options.min_len_v4 : options.min_len_v6;
    if (prefix->len < min_len) {
      bad("'" + std::string(token) + "' is broader than /" + std::to_string(min_len) +
          ", refusing a feed entry that wide");
      continue;
    }
    if (!strict) ++out.masked;
    out.entries.push_back(FeedEntry{*prefix, std::move(label)});
  }
  return out;
}

ThreatFeed::ThreatFeed(std::string path, FeedOptions options)
    : path_(std::move(path)), options_(std::move(options)) {}

Result<void> ThreatFeed::load() {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    ++stats_.load_failures;
    return fail("feed_unreadable", "threat feed '" + path_ + "': " + errno_text(errno));
  }
  std::ifstream in(path_, std::ios::binary);
  std::ostringstream buf;
  buf << in.rdbuf();
  if (!in.good() && !in.eof()) {
    ++stats_.load_failures;
    return fail("feed_unreadable", "threat feed '" + path_ + "': read failed");
  }
  ParsedFeed parsed = parse_feed(buf.str(), path_, options_.parse);
  std::vector<PrefixMatcher::Entry> entries;
  std::vector<std::string> labels;
  entries.reserve(parsed.entries.size());
  labels.reserve(parsed.entries.size());
  for (auto& e : parsed.entries) {
    entries.push_back({e.prefix, static_cast<std::uint32_t>(labels.size())});
    labels.push_back(std::move(e.label));
  }
  matcher_ = PrefixMatcher(entries);
  labels_ = std::move(labels);
  last_errors_ = std::move(parsed.errors);
  stamp_ =
      FileStamp{static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
                static_cast<std::int64_t>(st.st_size), static_cast<std::uint64_t>(st.st_ino)};
  ++stats_.loads;
  stats_.bad_lines += parsed.bad_lines;
  stats_.masked += parsed.masked;
  stats_.entries = matcher_.size();
  return {};
}

Result<bool> ThreatFeed::maybe_reload(TimeMs now) {
  if (polled_once_ && now >= last_poll_ && now - last_poll_ < options_.poll_interval_ms)
    return false;
  polled_once_ = true;
  last_poll_ = now;
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    ++stats_.load_failures;
    return fail("feed_unreadable", "threat feed '" + path_ + "': " + errno_text(errno));
  }
  FileStamp current{
      static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
      static_cast<std::int64_t>(st.st_size), static_cast<std::uint64_t>(st.st_ino)};
  if (current == stamp_) return false;
  if (auto r = load(); !r) return std::unexpected(r.error());
  return true;
}

std::optional<ThreatFeed::Match> ThreatFeed::match(const Prefix& address) const {
  ++stats_.lookups;
  auto m = matcher_.longest_match(address);
  if (!m) return std::nullopt;
  ++stats_.matches;
  return Match{m->prefix, labels_[m->value]};
}

std::optional<Detection> ThreatFeed::check(const ConnectEvent& event,
                                           const WorkloadIdentity& identity) {
  auto m = match(event.destination);
  if (!m) return std::nullopt;
  auto [it, fresh] = last_reported_.try_emplace(m->prefix, event.at);
  if (!fresh) {
    if (event.at - it->second < options_.repeat_suppress_ms) {
      ++stats_.suppressed;
      return std::nullopt;
    }
    it->second = event.at;
  }
  // Bound the suppression map: forget entries that can no longer suppress anything.
  if (last_reported_.size() > 65536)
    std::erase_if(last_reported_, [&](const auto& kv) {
      return event.at - kv.second >= options_.repeat_suppress_ms;
    });
  Detection d;
  d.prefix = m->prefix;
  d.direction = options_.direction;
  d.detector = "feed:" + options_.name;
  d.severity = options_.severity;
  d.confidence = options_.confidence;
  d.reason = "connect to " + event.destination.to_string() + ":" + std::to_string(event.port) +
             " by " + (event.comm.empty() ? std::string("?") : event.comm) + " (pid " +
             std::to_string(event.tgid) + ") matches feed '" + options_.name + "' entry " +
             m->prefix.to_string() + (m->label.empty() ? "" : " (" + std::string(m->label) + ")");
  d.identity = identity;
  d.at = event.at;
  ++stats_.detections;
  return d;
}

}  // namespace meshd::sensor
