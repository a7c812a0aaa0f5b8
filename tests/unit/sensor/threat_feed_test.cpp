#include "sensor/detectors/threat_feed.hpp"
#include "tests/support/temp_dir.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace meshd::sensor {
namespace {

Prefix P(std::string_view s) {
  return *Prefix::parse(s);
}

using meshd::testing::TempDir;

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

ConnectEvent connect_to(std::string_view ip, TimeMs at, std::uint16_t port = 443) {
  ConnectEvent e;
  e.at = at;
  e.cgroup_id = 7;
  e.tgid = 1234;
  e.comm = "curl";
  e.destination = P(ip);
  e.port = port;
  e.protocol = Protocol::tcp;
  return e;
}

TEST(FeedParse, AcceptsPlainListsAndSpamhausDropStyle) {
  const std::string text =
      "; Spamhaus DROP List 2024/03/01 - (c) 2024 The Spamhaus Project\n"
      "; Last-Modified: Fri, 01 Mar 2024 12:00:00 GMT\n"
      "1.10.16.0/20 ; SBL256894\n"
      "1.19.0.0/16 ; SBL434604\r\n"
      "# FireHOL style comment\n"
      "\n"
      "203.0.113.7\n"
      "  198.51.100.0/24   # scanner net  \n"
      "2001:db8::/32 ; SBL999\n"
      "192.0.2.77/24\n";  // host bits set: masked and counted
  auto parsed = parse_feed(text, "drop.txt");
  EXPECT_EQ(parsed.bad_lines, 0u) << (parsed.errors.empty() ? "" : parsed.errors[0]);
  ASSERT_EQ(parsed.entries.size(), 6u);
  EXPECT_EQ(parsed.entries[0].prefix, P("1.10.16.0/20"));
  EXPECT_EQ(parsed.entries[0].label, "SBL256894");
  EXPECT_EQ(parsed.entries[1].label, "SBL434604");  // CRLF stripped
  EXPECT_EQ(parsed.entries[2].prefix, P("203.0.113.7/32"));
  EXPECT_EQ(parsed.entries[2].label, "");
  EXPECT_EQ(parsed.entries[3].prefix, P("198.51.100.0/24"));
  EXPECT_EQ(parsed.entries[3].label, "scanner net");
  EXPECT_EQ(parsed.entries[4].prefix, P("2001:db8::/32"));
  EXPECT_EQ(parsed.entries[5].prefix, P("192.0.2.0/24"));
  EXPECT_EQ(parsed.masked, 1u);
  EXPECT_EQ(parsed.comments, 4u);
}

TEST(FeedParse, ReportsBadLinesWithFileAndLineAndKeepsTheRest) {
  const std::string text =
      "10.0.0.0/8\n"
      "999.1.1.1\n"
      "1.2.3.4 garbage\n"
      "0.0.0.0/0 ; everything\n"
      "1.2.3.0/33\n"
      "::/0\n"
      "2001:db8::zz\n"
      "5.6.7.8\n";
  auto parsed = parse_feed(text, "/etc/meshd/feeds/bad.txt");
  EXPECT_EQ(parsed.entries.size(), 2u);
  EXPECT_EQ(parsed.bad_lines, 6u);
  ASSERT_EQ(parsed.errors.size(), 6u);
  EXPECT_EQ(parsed.errors[0],
            "/etc/meshd/feeds/bad.txt:2: '999.1.1.1' is not a valid IPv4 address");
  EXPECT_NE(parsed.errors[1].find("bad.txt:3: unexpected text 'garbage'"), std::string::npos)
      << parsed.errors[1];
  EXPECT_NE(parsed.errors[2].find("bad.txt:4: '0.0.0.0/0' is broader than /8"), std::string::npos)
      << parsed.errors[2];
  EXPECT_NE(parsed.errors[3].find("bad.txt:5: "), std::string::npos);
  EXPECT_NE(parsed.errors[3].find("prefix length"), std::string::npos) << parsed.errors[3];
  EXPECT_NE(parsed.errors[4].find("bad.txt:6: '::/0' is broader than /16"), std::string::npos);
  EXPECT_NE(parsed.errors[5].find("bad.txt:7: "), std::string::npos);
}

TEST(FeedParse, CapsStoredErrorsButCountsAll) {
  std::string text;
  for (int i = 0; i < 500; ++i) text += "nonsense\n";
  FeedParseOptions opt;
  opt.max_errors = 10;
  auto parsed = parse_feed(text, "f", opt);
  EXPECT_EQ(parsed.bad_lines, 500u);
  EXPECT_EQ(parsed.errors.size(), 10u);
}

TEST(ThreatFeed, MatchesLongestPrefixAndReportsDetection) {
  TempDir dir;
  const auto path = dir.file("drop.txt");
  write_file(path, "10.0.0.0/8 ; SBL1\n10.1.2.0/24 ; SBL2\n2001:db8::/32\n");
  FeedOptions opt;
  opt.name = "drop";
  ThreatFeed feed(path, opt);
  ASSERT_TRUE(feed.maybe_reload(0).value());
  EXPECT_EQ(feed.stats().entries, 3u);

  auto m = feed.match(P("10.1.2.9"));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->prefix, P("10.1.2.0/24"));
  EXPECT_EQ(m->label, "SBL2");
  EXPECT_FALSE(feed.match(P("11.0.0.1")));

  WorkloadIdentity who;
  who.pod_name = "web-1";
  auto d = feed.check(connect_to("10.1.2.9", 1000), who);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->prefix, P("10.1.2.0/24"));
  EXPECT_EQ(d->detector, "feed:drop");
  EXPECT_EQ(d->direction, Direction::both);
  EXPECT_EQ(d->severity, Severity::high);
  EXPECT_EQ(d->identity.pod_name, "web-1");
  EXPECT_EQ(d->at, 1000);
  EXPECT_NE(d->reason.find("10.1.2.9:443"), std::string::npos) << d->reason;
  EXPECT_NE(d->reason.find("SBL2"), std::string::npos) << d->reason;

  // Retries to the same feed entry are suppressed for a minute, then reported again.
  EXPECT_FALSE(feed.check(connect_to("10.1.2.10", 30'000), who));
  EXPECT_EQ(feed.stats().suppressed, 1u);
  EXPECT_TRUE(feed.check(connect_to("10.1.2.10", 61'000), who));
  // A different entry is not suppressed.
  EXPECT_TRUE(feed.check(connect_to("10.9.9.9", 31'000), who));
  EXPECT_FALSE(feed.check(connect_to("192.0.2.1", 31'000), who));
}

TEST(ThreatFeed, ReloadsWhenTheFileChanges) {
  TempDir dir;
  const auto path = dir.file("feed.txt");
  write_file(path, "198.51.100.0/24\n");
  FeedOptions opt;
  opt.name = "f";
  opt.poll_interval_ms = 5000;
  ThreatFeed feed(path, opt);
  ASSERT_TRUE(feed.maybe_reload(0).value());
  EXPECT_TRUE(feed.match(P("198.51.100.1")));

  // Unchanged file: no reload; within the poll interval: not even looked at.
  EXPECT_FALSE(feed.maybe_reload(6000).value());
  write_file(path, "203.0.113.0/24\nbogus line\n");
  EXPECT_FALSE(feed.maybe_reload(7000).value());  // within 5 s of the last poll
  EXPECT_TRUE(feed.maybe_reload(12000).value());
  EXPECT_FALSE(feed.match(P("198.51.100.1")));
  EXPECT_TRUE(feed.match(P("203.0.113.1")));
  ASSERT_EQ(feed.last_errors().size(), 1u);
  EXPECT_NE(feed.last_errors()[0].find(path + ":2: unexpected text 'line'"), std::string::npos)
      << feed.last_errors()[0];
  EXPECT_EQ(feed.stats().bad_lines, 1u);

  // Same size, new content: the mtime change alone triggers the reload.
  write_file(path, "203.0.114.0/24\nbogus line\n");
  struct timespec times[2] = {{0, UTIME_OMIT}, {12345, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  EXPECT_TRUE(feed.maybe_reload(20000).value());
  EXPECT_TRUE(feed.match(P("203.0.114.1")));

  // An updater that renames a new file over the old one is picked up too.
  write_file(path + ".new", "192.0.2.0/24\n");
  std::filesystem::rename(path + ".new", path);
  EXPECT_TRUE(feed.maybe_reload(30000).value());
  EXPECT_TRUE(feed.match(P("192.0.2.1")));
  EXPECT_EQ(feed.stats().loads, 4u);
}

TEST(ThreatFeed, UnreadableFileKeepsThePreviousTable) {
  TempDir dir;
  const auto path = dir.file("feed.txt");
  write_file(path, "198.51.100.0/24\n");
  FeedOptions opt;
  opt.name = "f";
  ThreatFeed feed(path, opt);
  ASSERT_TRUE(feed.maybe_reload(0).value());
  std::filesystem::remove(path);
  auto r = feed.maybe_reload(10'000);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "feed_unreadable");
  EXPECT_NE(r.error().message.find(path), std::string::npos);
  EXPECT_EQ(feed.stats().load_failures, 1u);
  EXPECT_TRUE(feed.match(P("198.51.100.7")));
}

}  // namespace
}  // namespace meshd::sensor
