// Durable node state in SQLite (WAL mode) under node.data_dir: the node's own sequence
// counter, every envelope it has accepted or issued (to serve anti-entropy and to restore
// the core after a restart), the trust ledger, the enforced blocks, and the CrowdSec decisions
// enforced locally only (CAPI, lists: not claims, so not among the envelopes).
//
// Crash safety: every write is one transaction. WAL with synchronous=NORMAL is durable
// against a process crash (kill -9) because a commit has reached the WAL file in the OS page
// cache before it returns; only a power loss can lose the last commits. The sequence counter
// is advanced and committed BEFORE the claim using it is signed, so a crash can skip a
// number but never reuse one.
//
// Batches: envelopes received in one I/O burst are written in ONE transaction
// (begin_batch(), put_envelopes() per frame, commit_batch()): a commit per frame writes the
// table and both index pages to the WAL every time, which made ingest of a flood ~30 %
// slower. Until commit_batch() the rows are visible to this connection (load_range serves
// them to anti-entropy) but not durable; the driver must not relay them before it commits.
// Every other write commits an open batch first, so a sequence number is never committed
// inside (and never waits for) a batch.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "meshd/app/wal_checkpointer.hpp"
#include "meshd/common/result.hpp"
#include "meshd/common/time.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace meshd::app {

struct StoredEnvelope {
  std::array<std::uint8_t, 32> event_id{};
  std::string origin;     // node id of the signer
  std::uint64_t seq = 0;  // origin's sequence number
  int kind = 0;           // core::EventKind as an integer
  std::string bytes;      // the exact serialized Envelope
  TimeMs received_at = 0;
  TimeMs expires_at = 0;  // after this the envelope is no longer needed
};

struct StoredBlock {
  std::string prefix;  // CIDR text
  int direction = 3;
  std::uint64_t rule_id = 0;
  TimeMs expires_at = 0;
  double score = 0;
};

// A CrowdSec ban held locally only (origins CAPI, lists, ...), by the LAPI's decision id.
struct StoredCrowdsecDecision {
  std::uint64_t id = 0;
  std::string prefix;  // CIDR text
  std::string origin;
  std::string scenario;
  TimeMs expires_at = 0;
};

class Store {
 public:
  // Opens (creating if absent) `<data_dir>/meshd.db`; creates data_dir with mode 0700.
  // A file that is not a healthy SQLite database is an error ("store_corrupt"), never
  // silently replaced. An existing store on a read-only file system opens read-only
  // (read_only()): everything stored can be read, every write fails with "store_read_only".
  static Result<Store> open(const std::string& data_dir);

  Store(Store&&) noexcept;
  Store& operator=(Store&&) noexcept;
  ~Store();

  const std::string& path() const { return path_; }
  // Opened read-only (its file or file system is): no write can succeed.
  bool read_only() const { return read_only_; }
  // False while the last write failed (disk full, read-only, I/O error) or the store is
  // read-only; true again after a write succeeds.
  bool writable() const { return !read_only_ && !last_write_failed_; }
  // Message of the last failed write ("" when none failed since the last success).
  const std::string& last_write_error() const { return last_write_error_; }

  // Reserves and durably records the next own sequence number (first is 1).
  Result<std::uint64_t> next_sequence();
  Result<std::uint64_t> last_sequence() const;

  // Inserts envelopes in one transaction; an event id already stored is ignored. Inside a
  // batch the rows join the batch's transaction (committed by commit_batch()); a failure
  // rolls the whole batch back and ends it.
  Result<void> put_envelopes(std::span<const StoredEnvelope> envelopes);
  // Opens a batch (one write transaction for several put_envelopes calls); a no-op while one
  // is open. Errors: store_read_only, or SQLite's when the transaction cannot start.
  Result<void> begin_batch();
  // Commits the open batch (a no-op without one): its rows are durable when this returns.
  Result<void> commit_batch();
  bool in_batch() const { return in_batch_; }
  Result<std::vector<StoredEnvelope>> load_envelopes() const;
  // The same rows, ordered by (origin, seq), handed to `batch` at most `batch_size` at a time,
  // so that a restart holding many envelopes does not need them all in memory at once.
  Result<void> scan_envelopes(std::size_t batch_size,
                              const std::function<void(std::vector<StoredEnvelope>&)>& batch) const;
  // The bytes of origin's envelopes with seq in [from_seq, to_seq], ascending seq (serves
  // anti-entropy: core::EnvelopeArchive). One statement, prepared once.
  Result<void> load_range(const std::string& origin, std::uint64_t from_seq, std::uint64_t to_seq,
                          std::vector<std::pair<std::uint64_t, std::string>>& out) const;
  // Deletes envelopes whose expires_at < now; returns how many.
  Result<std::size_t> forget_expired(TimeMs now);
  Result<std::size_t> envelope_count() const;

  // Small named blobs (trust ledger state, quarantines).
  Result<void> put_blob(const std::string& key, const std::string& value);
  Result<std::optional<std::string>> get_blob(const std::string& key) const;

  // The enforced set, replaced as a whole in one transaction (start-up, after reconcile).
  Result<void> replace_blocks(std::span<const StoredBlock> blocks);
  // Incremental form, one transaction: upserts `changed` (by prefix), deletes `lifted`.
  // Its cost follows the number of changes, not the size of the enforced set.
  Result<void> update_blocks(std::span<const StoredBlock> changed,
                             std::span<const std::string> lifted);
  Result<std::vector<StoredBlock>> load_blocks() const;

  // Local-only CrowdSec decisions, one transaction: upserts `held` (by id), deletes `gone`
  // and every row ended by `now`.
  Result<void> update_crowdsec_local(std::span<const StoredCrowdsecDecision> held,
                                     std::span<const std::uint64_t> gone, TimeMs now);
  Result<std::vector<StoredCrowdsecDecision>> load_crowdsec_local() const;

  // WAL checkpoints run on a thread of their own (wal_checkpointer.hpp), not inside a commit
  // on the caller's thread. Counts of those done and failed (0 for a read-only store, or if
  // the second connection could not be opened and SQLite's automatic checkpoint stayed on).
  std::uint64_t checkpoints() const { return checkpointer_ ? checkpointer_->checkpoints() : 0; }
  std::uint64_t checkpoint_failures() const {
    return checkpointer_ ? checkpointer_->failures() : 0;
  }
  std::uint64_t writer_checkpoints() const {
    return checkpointer_ ? checkpointer_->writer_checkpoints() : 0;
  }

 private:
  Store(sqlite3* db, std::string path);
  Result<void> exec(const char* sql) const;
  // Rolls back the open transaction after `failure`. A failed rollback is added to the
  // returned error (which the caller reports), not dropped.
  std::unexpected<Error> rolled_back(std::unexpected<Error> failure) const;
  // Every write goes through here: fails fast when read-only, records the outcome.
  template <class T, class F>
  Result<T> write(F&& body);
  Result<void> write_blocks(std::span<const StoredBlock> changed,
                            std::span<const std::string> lifted);
  Result<void> write_crowdsec_local(std::span<const StoredCrowdsecDecision> held,
                                    std::span<const std::uint64_t> gone, TimeMs now);
  // Commits an open batch before another write (its outcome is recorded like any write).
  void end_batch_before_write();
  Result<void> insert_envelopes(std::span<const StoredEnvelope> envelopes);
  Result<void> commit();
  // Unhooks db_ from the checkpointer and stops its thread (before db_ closes).
  void stop_checkpointer();
  std::unique_ptr<WalCheckpointer> checkpointer_;
  sqlite3* db_ = nullptr;
  std::string path_;
  mutable sqlite3_stmt* range_stmt_ = nullptr;  // load_range's, prepared on first use
  sqlite3_stmt* insert_stmt_ = nullptr;         // put_envelopes', prepared on first use
  bool in_batch_ = false;
  bool read_only_ = false;
  bool last_write_failed_ = false;
  std::string last_write_error_;
};

}  // namespace meshd::app
