#include "meshd/app/store.hpp"

#include "meshd/common/errno_text.hpp"

#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace meshd::app {
namespace {

// Owns one prepared statement; finalised on every path out of a function.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() const { return s_; }
  void bind(int i, std::int64_t v) { sqlite3_bind_int64(s_, i, v); }
  void bind(int i, double v) { sqlite3_bind_double(s_, i, v); }
  void bind_text(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void bind_blob(int i, const void* p, std::size_t n) {
    sqlite3_bind_blob(s_, i, p, static_cast<int>(n), SQLITE_TRANSIENT);
  }
  int step() { return sqlite3_step(s_); }
  void reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  std::int64_t col_int(int i) const { return sqlite3_column_int64(s_, i); }
  double col_double(int i) const { return sqlite3_column_double(s_, i); }
  std::string col_bytes(int i) const {
    auto* p = static_cast<const char*>(sqlite3_column_blob(s_, i));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s_, i)))
             : std::string();
  }

 private:
  sqlite3_stmt* s_ = nullptr;
  int rc_ = SQLITE_ERROR;
};

std::unexpected<Error> db_error(sqlite3* db, const std::string& path, const std::string& what) {
  int code = sqlite3_errcode(db);
  std::string kind =
      (code == SQLITE_NOTADB || code == SQLITE_CORRUPT) ? "store_corrupt" : "store_error";
  return fail(kind, "store " + path + ": " + what + ": " + sqlite3_errmsg(db));
}

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES ('own_seq', 0), ('schema', 1);
CREATE TABLE IF NOT EXISTS envelopes (
  event_id BLOB PRIMARY KEY, origin TEXT NOT NULL, seq INTEGER NOT NULL, kind INTEGER NOT NULL,
  bytes BLOB NOT NULL, received_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS envelopes_expiry ON envelopes(expires_at);
CREATE INDEX IF NOT EXISTS envelopes_origin_seq ON envelopes(origin, seq);
CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
  prefix TEXT PRIMARY KEY, direction INTEGER NOT NULL, rule_id INTEGER NOT NULL,
  expires_at INTEGER NOT NULL, score REAL NOT NULL);
CREATE TABLE IF NOT EXISTS crowdsec_local (
  id INTEGER PRIMARY KEY, prefix TEXT NOT NULL, origin TEXT NOT NULL, scenario TEXT NOT NULL,
  expires_at INTEGER NOT NULL);
)sql";

}  // namespace

namespace {

bool read_only_fs(const std::string& dir) {
  struct statvfs st {};
  return ::statvfs(dir.c_str(), &st) == 0 && (st.f_flag & ST_RDONLY) != 0;
}

}  // namespace

Result<Store> Store::open(const std::string& data_dir) {
  if (::mkdir(data_dir.c_str(), 0700) != 0 && errno != EEXIST)
    return fail("store_error", "cannot create data dir " + data_dir + ": " + errno_text(errno));
  std::string path = data_dir + "/meshd.db";
  const bool ro_fs = read_only_fs(data_dir);
  struct stat st {};
  const bool exists = ::stat(path.c_str(), &st) == 0;
  if (ro_fs && !exists)
    return fail("store_read_only", "data dir " + data_dir +
                                       " is on a read-only file system and holds no store yet: "
                                       "cannot create " +
                                       path);
  // On a read-only file system a WAL database is readable only while its -wal and -shm files
  // exist (after a crash). After a clean stop they are gone, everything is in the main file,
  // and SQLite reads it as immutable.
  struct stat wal {};
  const bool immutable = ro_fs && ::stat((path + "-wal").c_str(), &wal) != 0;
  sqlite3* db = nullptr;
  int rc = immutable ? sqlite3_open_v2(("file:" + path + "?immutable=1").c_str(), &db,
                                       SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr)
                     : sqlite3_open_v2(path.c_str(), &db,
                                       SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return fail("store_error", "cannot open store " + path + ": " + msg);
  }
  Store store(db, path);
  store.read_only_ = ro_fs || sqlite3_db_readonly(db, "main") == 1;
  sqlite3_busy_timeout(db, 2000);
  // The first statement reads the header: a non-database file fails here with NOTADB.
  if (!store.read_only_)
    if (auto r = store.exec("PRAGMA journal_mode=WAL"); !r) return std::unexpected(r.error());
  {
    Stmt check(db, "PRAGMA quick_check");
    if (!check.ok() || check.step() != SQLITE_ROW)
      return db_error(db, path, "integrity check could not run");
    std::string verdict = check.col_bytes(0);
    if (verdict != "ok")
      return fail("store_corrupt", "store " + path + " failed its integrity check (" + verdict +
                                       "); move it aside to start with an empty store");
  }
  if (store.read_only_) {
    // Nothing can be created: the schema must be there already.
    Stmt s(db, "SELECT value FROM meta WHERE key = 'own_seq'");
    if (!s.ok() || s.step() != SQLITE_ROW)
      return db_error(db, path, "read-only store without its schema");
    return store;
  }
  if (auto r = store.exec("PRAGMA synchronous=NORMAL"); !r) return std::unexpected(r.error());
  // 1 MiB of page cache instead of SQLite's 2 MiB: reads are few (restart, anti-entropy
  // ranges, which are sequential in the (origin, seq) index) and the OS caches the file.
  if (auto r = store.exec("PRAGMA cache_size=-1024"); !r) return std::unexpected(r.error());
  if (auto r = store.exec(kSchema); !r) return std::unexpected(r.error());
  // After a burst the WAL file is cut back to this size when it is next written from its start.
  if (auto r = store.exec("PRAGMA journal_size_limit=4194304"); !r)
    return std::unexpected(r.error());
  store.checkpointer_ = WalCheckpointer::start(path);
  if (store.checkpointer_) store.checkpointer_->watch(db);  // else SQLite checkpoints itself
  return store;
}

template <class T, class F>
Result<T> Store::write(F&& body) {
  end_batch_before_write();
  Result<T> r =
      read_only_
          ? Result<T>(fail("store_read_only", "store " + path_ +
                                                  " is read-only (its file system is mounted "
                                                  "read-only): nothing can be recorded"))
          : body();
  last_write_failed_ = !r;
  last_write_error_ = r ? std::string() : r.error().message;
  return r;
}

Store::Store(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
Store::Store(Store&& o) noexcept
    : checkpointer_(std::move(o.checkpointer_)),
      db_(std::exchange(o.db_, nullptr)),
      path_(std::move(o.path_)),
      range_stmt_(std::exchange(o.range_stmt_, nullptr)),
      insert_stmt_(std::exchange(o.insert_stmt_, nullptr)),
      in_batch_(std::exchange(o.in_batch_, false)),
      read_only_(o.read_only_),
      last_write_failed_(o.last_write_failed_),
      last_write_error_(std::move(o.last_write_error_)) {}
Store& Store::operator=(Store&& o) noexcept {
  if (this != &o) {
    if (in_batch_) (void)exec("COMMIT");
    stop_checkpointer();
    sqlite3_finalize(range_stmt_);
    sqlite3_finalize(insert_stmt_);
    sqlite3_close(db_);
    checkpointer_ = std::move(o.checkpointer_);
    db_ = std::exchange(o.db_, nullptr);
    path_ = std::move(o.path_);
    range_stmt_ = std::exchange(o.range_stmt_, nullptr);
    insert_stmt_ = std::exchange(o.insert_stmt_, nullptr);
    in_batch_ = std::exchange(o.in_batch_, false);
    read_only_ = o.read_only_;
    last_write_failed_ = o.last_write_failed_;
    last_write_error_ = std::move(o.last_write_error_);
  }
  return *this;
}
Store::~Store() {
  // A clean stop keeps what the open batch holds (the driver commits before stopping).
  if (in_batch_ && db_ != nullptr) (void)exec("COMMIT");
  stop_checkpointer();
  sqlite3_finalize(range_stmt_);
  sqlite3_finalize(insert_stmt_);
  sqlite3_close(db_);
}

void Store::stop_checkpointer() {
  if (!checkpointer_) return;
  sqlite3_wal_hook(db_, nullptr, nullptr);
  checkpointer_.reset();
}

Result<void> Store::exec(const char* sql) const {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    auto e = db_error(db_, path_, err ? err : "exec failed");
    sqlite3_free(err);
    return e;
  }
  return {};
}

std::unexpected<Error> Store::rolled_back(std::unexpected<Error> failure) const {
  if (auto r = exec("ROLLBACK"); !r)
    failure.error().message += "; the rollback failed too: " + r.error().message;
  return failure;
}

Result<std::uint64_t> Store::next_sequence() {
  return write<std::uint64_t>([&]() -> Result<std::uint64_t> {
    Stmt s(db_, "UPDATE meta SET value = value + 1 WHERE key = 'own_seq' RETURNING value");
    if (!s.ok() || s.step() != SQLITE_ROW) return db_error(db_, path_, "advancing the sequence");
    auto v = static_cast<std::uint64_t>(s.col_int(0));
    if (s.step() != SQLITE_DONE) return db_error(db_, path_, "committing the sequence");
    return v;
  });
}

Result<std::uint64_t> Store::last_sequence() const {
  Stmt s(db_, "SELECT value FROM meta WHERE key = 'own_seq'");
  if (!s.ok() || s.step() != SQLITE_ROW) return db_error(db_, path_, "reading the sequence");
  return static_cast<std::uint64_t>(s.col_int(0));
}

Result<void> Store::put_envelopes(std::span<const StoredEnvelope> envelopes) {
  if (envelopes.empty()) return {};
  // Inside a batch: the rows join its transaction. Not through write(), which would commit it.
  if (in_batch_) {
    Result<void> r = insert_envelopes(envelopes);
    if (!r) {
      in_batch_ = false;
      r = rolled_back(std::unexpected(r.error()));
    }
    last_write_failed_ = !r;
    last_write_error_ = r ? std::string() : r.error().message;
    return r;
  }
  return write<void>([&]() -> Result<void> {
    if (auto r = exec("BEGIN IMMEDIATE"); !r) return r;
    if (auto r = insert_envelopes(envelopes); !r) return rolled_back(std::unexpected(r.error()));
    return commit();
  });
}

// Inside an open transaction: one INSERT per envelope with the cached statement.
Result<void> Store::insert_envelopes(std::span<const StoredEnvelope> envelopes) {
  if (insert_stmt_ == nullptr &&
      sqlite3_prepare_v2(db_,
                         "INSERT OR IGNORE INTO envelopes(event_id, origin, seq, kind, bytes, "
                         "received_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                         -1, &insert_stmt_, nullptr) != SQLITE_OK) {
    sqlite3_finalize(insert_stmt_);
    insert_stmt_ = nullptr;
    return db_error(db_, path_, "storing envelopes");
  }
  sqlite3_stmt* s = insert_stmt_;
  for (const auto& e : envelopes) {
    sqlite3_bind_blob(s, 1, e.event_id.data(), static_cast<int>(e.event_id.size()), SQLITE_STATIC);
    sqlite3_bind_text(s, 2, e.origin.data(), static_cast<int>(e.origin.size()), SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, static_cast<std::int64_t>(e.seq));
    sqlite3_bind_int64(s, 4, e.kind);
    sqlite3_bind_blob(s, 5, e.bytes.data(), static_cast<int>(e.bytes.size()), SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, e.received_at);
    sqlite3_bind_int64(s, 7, e.expires_at);
    const bool ok = sqlite3_step(s) == SQLITE_DONE;
    auto err = ok ? Result<void>() : Result<void>(db_error(db_, path_, "storing envelopes"));
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (!ok) return err;
  }
  return {};
}

// COMMIT; when it fails (disk full, I/O error) the transaction is rolled back if SQLite left
// it open, so the connection never stays inside a half-written transaction.
Result<void> Store::commit() {
  auto r = exec("COMMIT");
  if (!r && sqlite3_get_autocommit(db_) == 0) return rolled_back(std::unexpected(r.error()));
  return r;
}

Result<void> Store::begin_batch() {
  if (in_batch_) return {};
  auto r = write<void>([&]() -> Result<void> { return exec("BEGIN IMMEDIATE"); });
  in_batch_ = static_cast<bool>(r);
  return r;
}

Result<void> Store::commit_batch() {
  if (!in_batch_) return {};
  in_batch_ = false;
  auto r = commit();
  last_write_failed_ = !r;
  last_write_error_ = r ? std::string() : r.error().message;
  return r;
}

void Store::end_batch_before_write() {
  if (in_batch_) (void)commit_batch();
}

Result<std::vector<StoredEnvelope>> Store::load_envelopes() const {
  std::vector<StoredEnvelope> all;
  auto r = scan_envelopes(4096, [&](std::vector<StoredEnvelope>& batch) {
    all.insert(all.end(), std::make_move_iterator(batch.begin()),
               std::make_move_iterator(batch.end()));
  });
  if (!r) return std::unexpected(r.error());
  return all;
}

Result<void> Store::scan_envelopes(
    std::size_t batch_size, const std::function<void(std::vector<StoredEnvelope>&)>& batch) const {
  Stmt s(db_,
         "SELECT event_id, origin, seq, kind, bytes, received_at, expires_at FROM envelopes "
         "ORDER BY origin, seq");
  if (!s.ok()) return db_error(db_, path_, "loading envelopes");
  if (batch_size == 0) batch_size = 1;
  std::vector<StoredEnvelope> out;
  out.reserve(batch_size);
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    StoredEnvelope e;
    auto id = s.col_bytes(0);
    if (id.size() != e.event_id.size())
      return fail("store_corrupt", "store " + path_ + ": an envelope has a malformed event id");
    std::memcpy(e.event_id.data(), id.data(), id.size());
    e.origin = s.col_bytes(1);
    e.seq = static_cast<std::uint64_t>(s.col_int(2));
    e.kind = static_cast<int>(s.col_int(3));
    e.bytes = s.col_bytes(4);
    e.received_at = s.col_int(5);
    e.expires_at = s.col_int(6);
    out.push_back(std::move(e));
    if (out.size() == batch_size) {
      batch(out);
      out.clear();
    }
  }
  if (rc != SQLITE_DONE) return db_error(db_, path_, "loading envelopes");
  if (!out.empty()) batch(out);
  return {};
}

Result<void> Store::load_range(const std::string& origin, std::uint64_t from_seq,
                               std::uint64_t to_seq,
                               std::vector<std::pair<std::uint64_t, std::string>>& out) const {
  if (range_stmt_ == nullptr &&
      sqlite3_prepare_v2(db_,
                         "SELECT seq, bytes FROM envelopes WHERE origin = ?1 AND seq BETWEEN ?2 "
                         "AND ?3 ORDER BY seq",
                         -1, &range_stmt_, nullptr) != SQLITE_OK) {
    sqlite3_finalize(range_stmt_);
    range_stmt_ = nullptr;
    return db_error(db_, path_, "reading envelopes of " + origin);
  }
  sqlite3_stmt* s = range_stmt_;
  sqlite3_bind_text(s, 1, origin.data(), static_cast<int>(origin.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int64(s, 2, static_cast<std::int64_t>(from_seq));
  sqlite3_bind_int64(s, 3, static_cast<std::int64_t>(to_seq));
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    auto* p = static_cast<const char*>(sqlite3_column_blob(s, 1));
    out.emplace_back(
        static_cast<std::uint64_t>(sqlite3_column_int64(s, 0)),
        p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s, 1))) : std::string());
  }
  if (rc != SQLITE_DONE) {
    auto e = db_error(db_, path_, "reading envelopes of " + origin);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return e;
  }
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return {};
}

Result<std::size_t> Store::forget_expired(TimeMs now) {
  return write<std::size_t>([&]() -> Result<std::size_t> {
    Stmt s(db_, "DELETE FROM envelopes WHERE expires_at < ?1");
    if (!s.ok()) return db_error(db_, path_, "forgetting expired envelopes");
    s.bind(1, now);
    if (s.step() != SQLITE_DONE) return db_error(db_, path_, "forgetting expired envelopes");
    return static_cast<std::size_t>(sqlite3_changes(db_));
  });
}

Result<std::size_t> Store::envelope_count() const {
  Stmt s(db_, "SELECT count(*) FROM envelopes");
  if (!s.ok() || s.step() != SQLITE_ROW) return db_error(db_, path_, "counting envelopes");
  return static_cast<std::size_t>(s.col_int(0));
}

Result<void> Store::put_blob(const std::string& key, const std::string& value) {
  return write<void>([&]() -> Result<void> {
    Stmt s(db_,
           "INSERT INTO blobs(key, value) VALUES (?1, ?2) "
           "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    if (!s.ok()) return db_error(db_, path_, "storing " + key);
    s.bind_text(1, key);
    s.bind_blob(2, value.data(), value.size());
    if (s.step() != SQLITE_DONE) return db_error(db_, path_, "storing " + key);
    return {};
  });
}

Result<std::optional<std::string>> Store::get_blob(const std::string& key) const {
  Stmt s(db_, "SELECT value FROM blobs WHERE key = ?1");
  if (!s.ok()) return db_error(db_, path_, "reading " + key);
  s.bind_text(1, key);
  int rc = s.step();
  if (rc == SQLITE_DONE) return std::optional<std::string>{};
  if (rc != SQLITE_ROW) return db_error(db_, path_, "reading " + key);
  return std::optional<std::string>{s.col_bytes(0)};
}

Result<void> Store::replace_blocks(std::span<const StoredBlock> blocks) {
  return write<void>([&]() -> Result<void> {
    if (auto r = exec("BEGIN IMMEDIATE; DELETE FROM blocks;"); !r) return r;
    return write_blocks(blocks, {});
  });
}

Result<void> Store::update_blocks(std::span<const StoredBlock> changed,
                                  std::span<const std::string> lifted) {
  return write<void>([&]() -> Result<void> {
    if (changed.empty() && lifted.empty()) return {};
    if (auto r = exec("BEGIN IMMEDIATE"); !r) return r;
    return write_blocks(changed, lifted);
  });
}

// Inside an open transaction: upserts and deletes, then COMMIT (or ROLLBACK on error).
Result<void> Store::write_blocks(std::span<const StoredBlock> changed,
                                 std::span<const std::string> lifted) {
  Stmt s(db_,
         "INSERT OR REPLACE INTO blocks(prefix, direction, rule_id, expires_at, score) "
         "VALUES (?1, ?2, ?3, ?4, ?5)");
  bool ok = s.ok();
  for (const auto& b : changed) {
    if (!ok) break;
    s.bind_text(1, b.prefix);
    s.bind(2, static_cast<std::int64_t>(b.direction));
    s.bind(3, static_cast<std::int64_t>(b.rule_id));
    s.bind(4, b.expires_at);
    s.bind(5, b.score);
    ok = s.step() == SQLITE_DONE;
    s.reset();
  }
  if (ok && !lifted.empty()) {
    Stmt d(db_, "DELETE FROM blocks WHERE prefix = ?1");
    ok = d.ok();
    for (const auto& p : lifted) {
      if (!ok) break;
      d.bind_text(1, p);
      ok = d.step() == SQLITE_DONE;
      d.reset();
    }
  }
  if (!ok) {
    return rolled_back(db_error(db_, path_, "storing blocks"));
  }
  return exec("COMMIT");
}

Result<std::vector<StoredBlock>> Store::load_blocks() const {
  Stmt s(db_, "SELECT prefix, direction, rule_id, expires_at, score FROM blocks ORDER BY prefix");
  if (!s.ok()) return db_error(db_, path_, "loading blocks");
  std::vector<StoredBlock> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    out.push_back(StoredBlock{s.col_bytes(0), static_cast<int>(s.col_int(1)),
                              static_cast<std::uint64_t>(s.col_int(2)), s.col_int(3),
                              s.col_double(4)});
  }
  if (rc != SQLITE_DONE) return db_error(db_, path_, "loading blocks");
  return out;
}

Result<void> Store::update_crowdsec_local(std::span<const StoredCrowdsecDecision> held,
                                          std::span<const std::uint64_t> gone, TimeMs now) {
  if (held.empty() && gone.empty()) return {};
  return write<void>([&]() -> Result<void> {
    if (auto r = exec("BEGIN IMMEDIATE"); !r) return r;
    return write_crowdsec_local(held, gone, now);
  });
}

// Inside an open transaction: upserts, deletes and expiry, then COMMIT (or ROLLBACK on error).
Result<void> Store::write_crowdsec_local(std::span<const StoredCrowdsecDecision> held,
                                         std::span<const std::uint64_t> gone, TimeMs now) {
  Stmt s(db_,
         "INSERT OR REPLACE INTO crowdsec_local(id, prefix, origin, scenario, expires_at) "
         "VALUES (?1, ?2, ?3, ?4, ?5)");
  bool ok = s.ok();
  for (const auto& d : held) {
    if (!ok) break;
    s.bind(1, static_cast<std::int64_t>(d.id));
    s.bind_text(2, d.prefix);
    s.bind_text(3, d.origin);
    s.bind_text(4, d.scenario);
    s.bind(5, d.expires_at);
    ok = s.step() == SQLITE_DONE;
    s.reset();
  }
  if (ok) {
    Stmt d(db_, "DELETE FROM crowdsec_local WHERE id = ?1");
    ok = d.ok();
    for (auto id : gone) {
      if (!ok) break;
      d.bind(1, static_cast<std::int64_t>(id));
      ok = d.step() == SQLITE_DONE;
      d.reset();
    }
  }
  if (ok) {
    Stmt e(db_, "DELETE FROM crowdsec_local WHERE expires_at <= ?1");
    ok = e.ok();
    if (ok) {
      e.bind(1, now);
      ok = e.step() == SQLITE_DONE;
    }
  }
  if (!ok) return rolled_back(db_error(db_, path_, "storing CrowdSec decisions"));
  return exec("COMMIT");
}

Result<std::vector<StoredCrowdsecDecision>> Store::load_crowdsec_local() const {
  Stmt s(db_, "SELECT id, prefix, origin, scenario, expires_at FROM crowdsec_local ORDER BY id");
  if (!s.ok()) return db_error(db_, path_, "loading CrowdSec decisions");
  std::vector<StoredCrowdsecDecision> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW)
    out.push_back(StoredCrowdsecDecision{static_cast<std::uint64_t>(s.col_int(0)), s.col_bytes(1),
                                         s.col_bytes(2), s.col_bytes(3), s.col_int(4)});
  if (rc != SQLITE_DONE) return db_error(db_, path_, "loading CrowdSec decisions");
  return out;
}

}  // namespace meshd::app
