#include "meshd/app/store.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

namespace meshd::app {
namespace {

namespace fs = std::filesystem;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("meshd-store-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  Store open() {
    auto s = Store::open(dir_.string());
    EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message);
    return std::move(*s);
  }
  static StoredEnvelope env(std::uint8_t id, std::string origin, std::uint64_t seq, TimeMs exp) {
    StoredEnvelope e;
    e.event_id.fill(id);
    e.origin = std::move(origin);
    e.seq = seq;
    e.kind = 1;
    e.bytes = std::string("\x00\x01signed", 8) + std::to_string(id);
    e.received_at = 1000;
    e.expires_at = exp;
    return e;
  }
  fs::path dir_;
};

TEST_F(StoreTest, CreatesDataDirOwnerOnlyAndUsesWal) {
  auto s = open();
  EXPECT_EQ(fs::status(dir_).permissions() & fs::perms::all, fs::perms::owner_all);
  EXPECT_TRUE(fs::exists(dir_ / "meshd.db-wal"));
}

TEST_F(StoreTest, SequenceIsMonotonicAcrossReopen) {
  {
    auto s = open();
    EXPECT_EQ(*s.next_sequence(), 1u);
    EXPECT_EQ(*s.next_sequence(), 2u);
  }
  auto s = open();
  EXPECT_EQ(*s.last_sequence(), 2u);
  EXPECT_EQ(*s.next_sequence(), 3u);
}

TEST_F(StoreTest, EnvelopesRoundTripAndDuplicatesAreIgnored) {
  auto s = open();
  std::vector<StoredEnvelope> in{env(1, "a", 1, 5000), env(2, "a", 2, 9000), env(3, "b", 1, 9000)};
  ASSERT_TRUE(s.put_envelopes(in));
  ASSERT_TRUE(s.put_envelopes(std::span(in).first(1)));  // same event id again
  auto out = s.load_envelopes();
  ASSERT_TRUE(out);
  ASSERT_EQ(out->size(), 3u);
  EXPECT_EQ((*out)[1].bytes, in[1].bytes);
  EXPECT_EQ((*out)[1].event_id, in[1].event_id);
  EXPECT_EQ(*s.forget_expired(6000), 1u);
  EXPECT_EQ(*s.envelope_count(), 2u);
}

TEST_F(StoreTest, BlobsAndBlocksRoundTrip) {
  auto s = open();
  ASSERT_TRUE(s.put_blob("ledger", std::string("\0bin\xff", 5)));
  ASSERT_TRUE(s.put_blob("ledger", std::string("v2")));
  EXPECT_EQ(**s.get_blob("ledger"), "v2");
  EXPECT_FALSE(s.get_blob("missing")->has_value());
  std::vector<StoredBlock> blocks{{"10.0.0.0/8", 3, 7, 1234, 0.9},
                                  {"2001:db8::/32", 1, 8, 99, 0.5}};
  ASSERT_TRUE(s.replace_blocks(blocks));
  ASSERT_TRUE(s.replace_blocks(std::span(blocks).first(1)));
  auto out = s.load_blocks();
  ASSERT_EQ(out->size(), 1u);
  EXPECT_EQ((*out)[0].prefix, "10.0.0.0/8");
  EXPECT_EQ((*out)[0].rule_id, 7u);
  // Incremental: an upsert changes one row, a lift deletes one, the rest is untouched.
  std::vector<StoredBlock> changed{{"10.0.0.0/8", 3, 7, 5678, 0.8}, {"192.0.2.0/24", 2, 9, 1, 0.4}};
  std::vector<std::string> lifted{"2001:db8::/32"};
  ASSERT_TRUE(s.update_blocks(changed, lifted));
  ASSERT_TRUE(s.update_blocks({}, std::vector<std::string>{"192.0.2.0/24", "198.51.100.0/24"}));
  out = s.load_blocks();
  ASSERT_EQ(out->size(), 1u);
  EXPECT_EQ((*out)[0].expires_at, 5678);
  EXPECT_DOUBLE_EQ((*out)[0].score, 0.8);
}

TEST_F(StoreTest, LocalCrowdsecDecisionsSurviveAReopenUntilTheyEndOrGo) {
  {
    auto s = open();
    std::vector<StoredCrowdsecDecision> held{{7, "203.0.113.0/24", "lists", "firehol", 10'000},
                                             {8, "2001:db8::/64", "CAPI", "ssh-bf", 20'000},
                                             {9, "192.0.2.9", "CAPI", "http-probing", 30'000}};
    ASSERT_TRUE(s.update_crowdsec_local(held, {}, 0));
    // Re-timed (same id), one deleted by the LAPI, one run out by t = 10 s.
    std::vector<StoredCrowdsecDecision> again{{8, "2001:db8::/64", "CAPI", "ssh-bf", 50'000}};
    ASSERT_TRUE(s.update_crowdsec_local(again, std::vector<std::uint64_t>{9}, 10'000));
  }
  auto s = open();
  auto rows = s.load_crowdsec_local();
  ASSERT_TRUE(rows) << rows.error().message;
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].id, 8u);
  EXPECT_EQ((*rows)[0].prefix, "2001:db8::/64");
  EXPECT_EQ((*rows)[0].origin, "CAPI");
  EXPECT_EQ((*rows)[0].scenario, "ssh-bf");
  EXPECT_EQ((*rows)[0].expires_at, 50'000);
}

TEST_F(StoreTest, GarbageFileIsAClearStartupErrorAndIsNotReplaced) {
  fs::create_directories(dir_);
  std::string garbage(8192, 'x');
  std::ofstream(dir_ / "meshd.db") << garbage;
  auto s = Store::open(dir_.string());
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, "store_corrupt");
  EXPECT_NE(s.error().message.find("meshd.db"), std::string::npos);
  std::ifstream in(dir_ / "meshd.db");
  std::string after((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(after, garbage);
}

// A child process writes and is killed with SIGKILL in the middle of its work; whatever it
// committed must be there, and sequence numbers must never be handed out twice.
TEST_F(StoreTest, KillNineLosesNoCommittedWriteAndNeverReusesASequence) {
  { auto s = open(); }
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(pipefd[0]);
    auto s = Store::open(dir_.string());
    if (!s) ::_exit(1);
    for (std::uint8_t i = 1;; ++i) {
      auto seq = s->next_sequence();
      if (!seq) ::_exit(2);
      StoredEnvelope e = env(i, "self", *seq, 1 << 30);
      if (!s->put_envelopes(std::span(&e, 1))) ::_exit(3);
      // Report only after the commit returned: the parent checks all reported writes.
      std::uint64_t v = *seq;
      if (::write(pipefd[1], &v, sizeof v) != sizeof v) ::_exit(4);
      if (i == 200) ::pause();
    }
  }
  ::close(pipefd[1]);
  std::uint64_t last_reported = 0, v = 0;
  for (int n = 0; n < 50 && ::read(pipefd[0], &v, sizeof v) == sizeof v; ++n) last_reported = v;
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  while (::read(pipefd[0], &v, sizeof v) == sizeof v) last_reported = v;
  ::close(pipefd[0]);
  ASSERT_GE(last_reported, 50u);

  auto s = open();
  auto envs = s.load_envelopes();
  ASSERT_TRUE(envs);
  std::uint64_t max_seq = 0;
  for (const auto& e : *envs) max_seq = std::max(max_seq, e.seq);
  EXPECT_GE(max_seq, last_reported);       // nothing reported as committed is lost
  EXPECT_GE(*s.last_sequence(), max_seq);  // the counter is never behind a used number
  EXPECT_GT(*s.next_sequence(), max_seq);  // so the next one is fresh
}

// One transaction per I/O burst: rows of an open batch are served (load_range) before the
// commit, are durable after it, are lost by a crash before it, and any other write (a
// sequence number above all) commits the batch first instead of joining it.
TEST_F(StoreTest, BatchIsVisibleAtOnceDurableOnCommitAndCommittedByAnyOtherWrite) {
  { auto s = open(); }
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(pipefd[0]);
    auto s = Store::open(dir_.string());
    if (!s || !s->begin_batch() || !s->in_batch()) ::_exit(1);
    for (std::uint8_t i = 1; i <= 3; ++i) {
      StoredEnvelope e = env(i, "peer", i, 1 << 30);
      if (!s->put_envelopes(std::span(&e, 1))) ::_exit(2);
    }
    std::vector<std::pair<std::uint64_t, std::string>> rows;
    if (!s->load_range("peer", 1, 3, rows) || rows.size() != 3) ::_exit(3);  // served already
    if (!s->commit_batch() || s->in_batch()) ::_exit(4);
    // A second batch, cut short by a sequence number (which must not wait inside it).
    if (!s->begin_batch()) ::_exit(5);
    StoredEnvelope e4 = env(4, "peer", 4, 1 << 30);
    if (!s->put_envelopes(std::span(&e4, 1))) ::_exit(6);
    auto seq = s->next_sequence();
    if (!seq || *seq != 1 || s->in_batch()) ::_exit(7);
    // A third batch the crash cuts off: never committed, so lost.
    if (!s->begin_batch()) ::_exit(8);
    StoredEnvelope e5 = env(5, "peer", 5, 1 << 30);
    if (!s->put_envelopes(std::span(&e5, 1))) ::_exit(9);
    char ok = 'k';
    if (::write(pipefd[1], &ok, 1) != 1) ::_exit(10);
    ::pause();
  }
  ::close(pipefd[1]);
  char c = 0;
  const bool reported = ::read(pipefd[0], &c, 1) == 1;
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ::close(pipefd[0]);
  ASSERT_TRUE(reported) << "child exit status " << WEXITSTATUS(status);

  auto s = open();
  std::vector<std::pair<std::uint64_t, std::string>> rows;
  ASSERT_TRUE(s.load_range("peer", 1, 10, rows));
  ASSERT_EQ(rows.size(), 4u);  // seqs 1-3 (committed batch) and 4 (committed by next_sequence)
  EXPECT_EQ(rows.back().first, 4u);
  EXPECT_EQ(*s.last_sequence(), 1u);
  EXPECT_TRUE(s.writable());
  EXPECT_FALSE(s.in_batch());
  ASSERT_TRUE(s.commit_batch());  // nothing open: a no-op
}

}  // namespace
}  // namespace meshd::app

namespace meshd::app {
namespace {

// The WAL is checkpointed by the store's own thread once it holds WalCheckpointer::kPages,
// not inside a commit: the writer's commits keep their cost, the WAL stops growing, and
// nothing written is lost across a reopen.
TEST_F(StoreTest, WalIsCheckpointedOffTheWritersThreadAndStaysBounded) {
  constexpr int kRows = 12000;  // ~5 WAL pages each (row, indexes): many checkpoints
  std::uintmax_t wal_max = 0;
  {
    auto s = open();
    for (int i = 0; i < kRows; ++i) {
      StoredEnvelope e =
          env(0, "o" + std::to_string(i % 7), static_cast<std::uint64_t>(i), 1 << 30);
      for (std::size_t b = 0; b < e.event_id.size(); ++b)
        e.event_id[b] = static_cast<std::uint8_t>((i * 131 + static_cast<int>(b) * 7) >> (b % 3));
      std::memcpy(e.event_id.data(), &i, sizeof i);
      e.bytes.assign(300, static_cast<char>('a' + i % 26));
      ASSERT_TRUE(s.put_envelopes(std::span(&e, 1)));
      wal_max = std::max(wal_max, fs::file_size(dir_ / "meshd.db-wal"));
    }
    for (int t = 0; t < 500 && s.checkpoints() == 0; ++t)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_GE(s.checkpoints(), 1u);
    EXPECT_EQ(s.checkpoint_failures(), 0u);
  }
  // Bounded: this loop writes faster than any checkpoint on the side can finish (with only
  // those, the WAL of 6,000 such commits grew to 116 MB), so past kWriterPages the writer
  // checkpoints itself (or tries again at its next commit while the thread's is running).
  EXPECT_LT(wal_max, std::uintmax_t{4096} * 2 * WalCheckpointer::kWriterPages) << wal_max;
  auto s = open();
  EXPECT_EQ(*s.envelope_count(), static_cast<std::size_t>(kRows));
}

}  // namespace
}  // namespace meshd::app
