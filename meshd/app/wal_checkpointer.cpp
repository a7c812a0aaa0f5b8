#include "meshd/app/wal_checkpointer.hpp"

#include <sqlite3.h>

namespace meshd::app {

std::unique_ptr<WalCheckpointer> WalCheckpointer::start(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return nullptr;
  }
  // A checkpoint reads WAL frames and writes database pages; it needs no page cache of note.
  sqlite3_exec(db, "PRAGMA cache_size=16", nullptr, nullptr, nullptr);
  std::unique_ptr<WalCheckpointer> c(new WalCheckpointer(db));
  c->thread_ = std::thread([raw = c.get()] { raw->run(); });
  return c;
}

WalCheckpointer::~WalCheckpointer() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
  sqlite3_close(db_);
}

void WalCheckpointer::watch(sqlite3* db) {
  sqlite3_wal_hook(db, &WalCheckpointer::on_commit, this);
}

int WalCheckpointer::on_commit(void* self, sqlite3* db, const char* schema, int wal_pages) {
  auto* c = static_cast<WalCheckpointer*>(self);
  if (wal_pages >= kWriterPages) {
    // Between two of the writer's own transactions nothing races it: this one completes.
    int log_frames = 0, copied = 0;
    const int rc =
        sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, &log_frames, &copied);
    // BUSY: the thread's checkpoint is running; the next commit tries again.
    if (rc == SQLITE_OK) c->writer_checkpoints_.fetch_add(1, std::memory_order_relaxed);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) c->failures_.fetch_add(1, std::memory_order_relaxed);
  } else if (wal_pages >= kPages) {
    c->request();
  }
  return SQLITE_OK;
}

void WalCheckpointer::request() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    requested_ = true;
  }
  wake_.notify_one();
}

void WalCheckpointer::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    wake_.wait(lock, [this] { return requested_ || stopping_; });
    if (stopping_) return;
    requested_ = false;
    lock.unlock();
    // PASSIVE: copies what no reader still needs, never waits for or blocks the writer. A
    // failure (disk full, I/O error) leaves the WAL longer, not the data lost; the next
    // commit over kPages asks again.
    int log_frames = 0, copied = 0;
    const int rc =
        sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log_frames, &copied);
    if (rc == SQLITE_OK) checkpoints_.fetch_add(1, std::memory_order_relaxed);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) failures_.fetch_add(1, std::memory_order_relaxed);
    lock.lock();
  }
}

}  // namespace meshd::app
