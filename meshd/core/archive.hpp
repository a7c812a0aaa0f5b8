// Optional boundary of the core: where the bytes of stored envelopes live.
//
// By default a Node keeps every envelope of its store (which serves anti-entropy, proof
// evidence and retractions by prefix) in memory. A driver that already writes every Persist
// action to durable storage (meshd/app: SQLite) can hand the Node an EnvelopeArchive instead:
// the store then keeps only (seq, expiry, kind) per event and reads envelope bytes back when
// it needs them. Behaviour is the same as long as the archive returns what was persisted.
//
// Contract for the driver:
//  - every Persist of an Actions is durable (load() finds it) before the driver's next call
//    into the Node (the Node keeps the envelopes of the latest call in memory until then);
//  - the archive keeps a persisted envelope at least until Persist::expires_at. The Node emits
//    no Forget actions in this mode (naming an envelope would mean reading it back): the driver
//    drops expired rows itself.
// A seq the archive cannot return (a failed write, a damaged store) is treated as not stored:
// it is not served, and it is counted in Stats::archive_misses.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "meshd/core/messages.hpp"

namespace meshd::core {

class EnvelopeArchive {
 public:
  virtual ~EnvelopeArchive() = default;
  // Appends exactly seqs.size() entries to `out`: the envelope persisted for (origin, seq)
  // for each seq (ascending, distinct), or null where the archive has none.
  virtual void load(std::string_view origin, std::span<const std::uint64_t> seqs,
                    std::vector<Envelope>& out) = 0;
};

}  // namespace meshd::core
