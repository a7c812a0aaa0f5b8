// The simulator's EventOpener: signatures without crypto. An envelope is a 14-byte blob
//   [0xA7][kind 'C' | 'P'][u32 index][u64 seq]   (little endian)
// naming an entry of the shared, immutable claim plan (kind 'C') or of this run's proof table
// (kind 'P', proofs are created during the run). The opener knows which node actually
// produced each entry, so it models who can sign what:
//  - a claim whose declared origin differs from its producer is a forgery -> bad_signature;
//  - a claim from a sybil identity (not a certified node) -> unknown_signer;
//  - anything else that does not parse -> malformed.
// The seq is part of the signed blob: the producer picks it, as a real signer does.
// One opener per run, shared by that run's nodes (single-threaded).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "meshd/core/opener.hpp"
#include "simulations/model.hpp"

namespace meshd::sim {

// Simulation start in Unix ms (claims carry issued-at in this clock).
inline constexpr TimeMs kEpochMs = 1'700'000'000'000;
inline TimeMs to_unix_ms(SimTimeUs t) {
  return kEpochMs + t / 1000;
}
inline SimTimeUs from_unix_ms(TimeMs ms) {
  return (ms - kEpochMs) * 1000;
}

struct BlobRef {
  char kind = 0;  // 'C' claim, 'P' proof
  std::uint32_t index = 0;
  std::uint64_t seq = 0;
};

std::string make_blob(char kind, std::uint32_t index, std::uint64_t seq);
// Parses a blob; false for anything else.
bool parse_blob(const std::string& bytes, BlobRef& out);

class SimOpener final : public core::EventOpener {
 public:
  explicit SimOpener(const Model& model) : model_(model) {}

  core::EventId event_id(const std::string& envelope) const override;
  Result<core::SignedEvent> open(const std::string& envelope, TimeMs now) override;
  Result<core::SignedEvent> open_evidence(const std::string& envelope, TimeMs now) override;

  // Registers a proof signed by `reporter` at `now`; returns its proof index.
  std::uint32_t add_proof(std::uint32_t reporter, core::ProofBody body, TimeMs now);
  std::size_t proofs() const { return proofs_.size(); }

  std::uint64_t opens() const { return opens_; }

 private:
  Result<core::SignedEvent> open_impl(const std::string& envelope, TimeMs now,
                                      bool check_freshness);
  struct ProofEntry {
    std::uint32_t reporter;
    TimeMs issued_at;
    core::ProofBody body;
  };
  const Model& model_;
  std::vector<ProofEntry> proofs_;
  std::uint64_t opens_ = 0;
};

}  // namespace meshd::sim
