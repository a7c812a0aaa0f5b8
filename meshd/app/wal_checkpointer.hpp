// Checkpoints the store's write-ahead log on a thread of its own.
//
// SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold (1,000 WAL
// pages), on the thread that commits: the daemon's io thread. It copies the WAL into the
// database file and syncs both, which here blocked that thread for ~40 ms every few seconds of
// steady writes (strace of one daemon of a 5-node mesh: fdatasync of the WAL 8.9 ms, then the
// copy and the sync of the database); every claim signed or received in that time waited, and
// those were the slow samples of honest delivery. Here the store's own connection only reports
// the WAL's size after each commit (sqlite3_wal_hook, which also turns the automatic checkpoint
// off) and this thread, on a second connection, runs a PASSIVE checkpoint once the WAL holds
// kPages: it never waits for the writer or blocks it, and what it cannot copy yet it copies at
// the next request. Durability does not change: a commit is durable in the WAL either way.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

struct sqlite3;

namespace meshd::app {

class WalCheckpointer {
 public:
  // WAL pages (4 KiB each) after which a checkpoint is requested: SQLite's own default.
  static constexpr int kPages = 1000;
  // A writer faster than the checkpoints (a restart's catch-up, a flood) keeps the thread from
  // ever finishing one, and only a finished checkpoint lets the next commit write the WAL
  // from its start again. Past this many pages the commit checkpoints on the writer's thread
  // itself, as SQLite would, so the WAL stays bounded.
  static constexpr int kWriterPages = 8 * kPages;

  // Opens a second connection to `path` and starts the thread; nullptr if the connection
  // cannot be opened: the caller then keeps SQLite's automatic checkpoint.
  static std::unique_ptr<WalCheckpointer> start(const std::string& path);
  ~WalCheckpointer();  // stops and joins the thread, then closes its connection
  WalCheckpointer(const WalCheckpointer&) = delete;
  WalCheckpointer& operator=(const WalCheckpointer&) = delete;

  // Installs the commit hook on the writer's connection `db` (the store's).
  void watch(sqlite3* db);

  std::uint64_t checkpoints() const { return checkpoints_.load(std::memory_order_relaxed); }
  std::uint64_t failures() const { return failures_.load(std::memory_order_relaxed); }
  // Checkpoints the writer ran itself past kWriterPages.
  std::uint64_t writer_checkpoints() const {
    return writer_checkpoints_.load(std::memory_order_relaxed);
  }

 private:
  explicit WalCheckpointer(sqlite3* db) : db_(db) {}
  static int on_commit(void* self, sqlite3* db, const char* schema, int wal_pages);
  void request();
  void run();

  sqlite3* db_;  // this thread's connection
  std::mutex mutex_;
  std::condition_variable wake_;
  bool requested_ = false;
  bool stopping_ = false;
  std::atomic<std::uint64_t> checkpoints_{0};
  std::atomic<std::uint64_t> failures_{0};
  std::atomic<std::uint64_t> writer_checkpoints_{0};
  std::thread thread_;
};

}  // namespace meshd::app
