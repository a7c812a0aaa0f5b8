// The production EventOpener of meshd/core: decodes a protobuf Envelope, checks the signer's
// CA-signed certificate (attached to the envelope, or learned earlier), verifies the Ed25519
// signature over the exact received body bytes, applies the freshness window, and returns
// the decoded SignedEvent. Everything crypto and protobuf stays here, outside the core.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "meshd/core/opener.hpp"
#include "proto/crypto.hpp"
#include "proto/wire.pb.h"
#include "trust/params.hpp"

namespace meshd::app {

struct OpenerStats {
  std::uint64_t opened = 0;
  std::uint64_t malformed = 0;
  std::uint64_t bad_signature = 0;
  std::uint64_t unknown_signer = 0;  // no valid cert, wrong role, revoked, wrong CA
  std::uint64_t stale = 0;
  std::uint64_t certs_cached = 0;  // gauge
};

class ProductionOpener final : public core::EventOpener {
 public:
  // `params` supplies the TTL caps and the future window; it must outlive the opener (the
  // daemon swaps the params object's contents on SIGHUP).
  ProductionOpener(proto::PublicKey ca, const trust::Params& params);

  // Certificates learned outside envelopes (handshakes, operator decisions). Errors are
  // proto::verify_cert's.
  Result<v1::NodeCert> learn_cert(const v1::SignedCert& cert, TimeMs now);
  void set_revoked_serials(std::unordered_set<std::uint64_t> serials);

  core::EventId event_id(const std::string& envelope) const override;
  std::optional<core::UnverifiedOrigin> peek(const std::string& envelope) const override;
  Result<core::SignedEvent> open(const std::string& envelope, TimeMs now) override;
  Result<core::SignedEvent> open_evidence(const std::string& envelope, TimeMs now) override;

  const OpenerStats& stats() const { return stats_; }

 private:
  struct KnownCert {
    v1::NodeCert cert;
    proto::PublicKey key;
  };
  Result<core::SignedEvent> open_impl(const std::string& envelope, TimeMs now, bool fresh);
  // The verified cert of `signer` valid at `at`, from the envelope or the cache.
  Result<const KnownCert*> signer_cert(const v1::Envelope& env, const std::string& signer,
                                       TimeMs at);
  Result<core::SignedEvent> decode(const v1::Envelope& env, const KnownCert& signer, TimeMs now,
                                   bool fresh);
  Error count(Error e);

  proto::PublicKey ca_;
  const trust::Params& params_;
  // Verified certs keyed by their exact bytes (body + CA signature): each distinct cert is
  // verified once; later envelopes only compare bytes and check the validity window.
  std::unordered_map<std::string, KnownCert> by_bytes_;
  std::unordered_map<std::string, const KnownCert*> by_node_;  // newest cert per node id
  std::unordered_set<std::uint64_t> revoked_;
  OpenerStats stats_;
};

}  // namespace meshd::app
