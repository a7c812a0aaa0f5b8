#include "simulations/opener.hpp"

#include <cstring>

#include "simulations/rng.hpp"

namespace meshd::sim {

namespace {

constexpr unsigned char kMagic = 0xA7;
constexpr std::size_t kBlobSize = 14;
// Freshness window of the simulated daemon: claims issued further ahead are rejected.
constexpr DurationMs kMaxFutureMs = 5 * kMinute;

std::array<std::uint8_t, 32> digest32(std::uint64_t a, std::uint64_t b, std::uint64_t c) {
  std::uint64_t st = mix64(a) ^ mix64(b + 0x51ed27) ^ mix64(c + 0x2545f491);
  std::array<std::uint8_t, 32> out{};
  for (int w = 0; w < 4; ++w) {
    const std::uint64_t v = splitmix64(st);
    std::memcpy(out.data() + 8 * w, &v, 8);
  }
  return out;
}

}  // namespace

std::string make_blob(char kind, std::uint32_t index, std::uint64_t seq) {
  std::string b(kBlobSize, '\0');
  b[0] = static_cast<char>(kMagic);
  b[1] = kind;
  std::memcpy(b.data() + 2, &index, 4);
  std::memcpy(b.data() + 6, &seq, 8);
  return b;
}

bool parse_blob(const std::string& bytes, BlobRef& out) {
  if (bytes.size() != kBlobSize || static_cast<unsigned char>(bytes[0]) != kMagic) return false;
  if (bytes[1] != 'C' && bytes[1] != 'P') return false;
  out.kind = bytes[1];
  std::memcpy(&out.index, bytes.data() + 2, 4);
  std::memcpy(&out.seq, bytes.data() + 6, 8);
  return true;
}

core::EventId SimOpener::event_id(const std::string& envelope) const {
  BlobRef r;
  if (parse_blob(envelope, r)) return digest32(std::uint64_t(r.kind), r.index, r.seq);
  // Garbage still gets a deterministic id (FNV-1a spread over 32 bytes).
  return digest32(purpose_hash(envelope), envelope.size(), 0xbad);
}

Result<core::SignedEvent> SimOpener::open(const std::string& envelope, TimeMs now) {
  return open_impl(envelope, now, true);
}

Result<core::SignedEvent> SimOpener::open_evidence(const std::string& envelope, TimeMs now) {
  return open_impl(envelope, now, false);
}

std::uint32_t SimOpener::add_proof(std::uint32_t reporter, core::ProofBody body, TimeMs now) {
  proofs_.push_back(ProofEntry{reporter, now, std::move(body)});
  return std::uint32_t(proofs_.size() - 1);
}

Result<core::SignedEvent> SimOpener::open_impl(const std::string& envelope, TimeMs now,
                                               bool check_freshness) {
  ++opens_;
  BlobRef r;
  if (!parse_blob(envelope, r))
    return fail(std::string(core::open_error::malformed), "not a simulator envelope");
  core::SignedEvent ev;
  ev.seq = r.seq;
  if (r.kind == 'P') {
    if (r.index >= proofs_.size())
      return fail(std::string(core::open_error::malformed), "unknown proof index");
    const auto& p = proofs_[r.index];
    ev.kind = core::EventKind::misbehaviour_proof;
    ev.origin =
        trust::Origin{model_.node_ids[p.reporter], model_.domain_ids[model_.domain_of[p.reporter]]};
    ev.body_digest = digest32('P', r.index, 0);
    ev.issued_at = p.issued_at;
    ev.body = p.body;
    return ev;
  }
  if (r.index >= model_.claims.size())
    return fail(std::string(core::open_error::malformed), "unknown claim index");
  const PlannedClaim& c = model_.claims[r.index];
  if (c.origin >= std::uint32_t(model_.nodes))
    return fail(std::string(core::open_error::unknown_signer),
                "signer " + model_.identity(c.origin) + " has no CA-signed certificate");
  if (c.producer != c.origin)
    return fail(std::string(core::open_error::bad_signature),
                "signature of " + model_.identity(c.origin) + " does not verify");
  const TimeMs issued = to_unix_ms(c.at);
  if (check_freshness && issued > now + kMaxFutureMs)
    return fail(std::string(core::open_error::stale), "claim issued in the future");
  if (check_freshness && issued + c.ttl_ms <= now)
    return fail(std::string(core::open_error::stale), "claim expired");
  ev.kind = core::EventKind::claim;
  ev.origin =
      trust::Origin{model_.node_ids[c.origin], model_.domain_ids[model_.domain_of[c.origin]]};
  ev.body_digest = digest32('C', r.index, 0);
  ev.issued_at = issued;
  trust::ClaimFacts f;
  f.origin = ev.origin;
  f.seq = r.seq;
  f.prefix = model_.targets[c.target].prefix;
  f.direction = Direction::both;
  f.detector = c.honest ? "sim:sensor" : "sim:adversary";
  f.severity = c.severity;
  f.confidence = c.confidence;
  f.issued_at = issued;
  f.requested_ttl = c.ttl_ms;
  ev.body = std::move(f);
  return ev;
}

}  // namespace meshd::sim
