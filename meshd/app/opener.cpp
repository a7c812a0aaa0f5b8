#include "meshd/app/opener.hpp"

#include <algorithm>

#include "proto/cert.hpp"
#include "proto/convert.hpp"
#include "proto/envelope.hpp"

namespace meshd::app {
namespace {

namespace oe = core::open_error;

Error err(std::string_view code, std::string message) {
  return Error{std::string(code), std::move(message)};
}

std::string who(const proto::SignerRef& s) {
  return s.signer + "/" + std::to_string(s.seq);
}

trust::Digest digest_of(const std::string& body) {
  return proto::blake2b_256(proto::as_bytes(body));
}

}  // namespace

ProductionOpener::ProductionOpener(proto::PublicKey ca, const trust::Params& params)
    : ca_(ca), params_(params) {}

Error ProductionOpener::count(Error e) {
  if (e.code == oe::malformed)
    ++stats_.malformed;
  else if (e.code == oe::stale)
    ++stats_.stale;
  else if (e.code == oe::unknown_signer)
    ++stats_.unknown_signer;
  else
    ++stats_.bad_signature;
  return e;
}

Result<v1::NodeCert> ProductionOpener::learn_cert(const v1::SignedCert& signed_cert, TimeMs now) {
  auto cert = proto::verify_cert(signed_cert, ca_, now);
  if (!cert) return std::unexpected(cert.error());
  auto key = proto::cert_public_key(*cert);
  if (!key) return std::unexpected(key.error());
  std::string bytes = signed_cert.cert_body() + signed_cert.ca_signature();
  auto [it, inserted] = by_bytes_.try_emplace(std::move(bytes), KnownCert{*cert, *key});
  auto& newest = by_node_[cert->node_id()];
  if (!newest || newest->cert.not_after_ms() <= cert->not_after_ms()) newest = &it->second;
  stats_.certs_cached = by_bytes_.size();
  return *cert;
}

void ProductionOpener::set_revoked_serials(std::unordered_set<std::uint64_t> serials) {
  revoked_ = std::move(serials);
}

core::EventId ProductionOpener::event_id(const std::string& envelope) const {
  return proto::event_id(proto::as_bytes(envelope));
}

Result<const ProductionOpener::KnownCert*> ProductionOpener::signer_cert(const v1::Envelope& env,
                                                                         const std::string& signer,
                                                                         TimeMs at) {
  const KnownCert* known = nullptr;
  if (env.has_signer_cert()) {
    const auto& sc = env.signer_cert();
    auto it = by_bytes_.find(sc.cert_body() + sc.ca_signature());
    if (it == by_bytes_.end()) {
      // Verify the CA signature once; validity is checked below at `at` for every use.
      auto cert = proto::decode_cert(sc);
      if (!cert)
        return std::unexpected(err(oe::malformed, "attached cert: " + cert.error().message));
      auto learned = learn_cert(sc, std::clamp(at, cert->not_before_ms(), cert->not_after_ms()));
      if (!learned)
        return std::unexpected(
            err(oe::unknown_signer, "cert of " + signer + ": " + learned.error().message));
      it = by_bytes_.find(sc.cert_body() + sc.ca_signature());
    }
    known = &it->second;
  } else if (auto it = by_node_.find(signer); it != by_node_.end()) {
    known = it->second;
  }
  if (!known)
    return std::unexpected(err(oe::unknown_signer, "no certificate known for signer " + signer));
  if (known->cert.node_id() != signer)
    return std::unexpected(err(oe::unknown_signer, "attached cert is for " + known->cert.node_id() +
                                                       ", not for signer " + signer));
  if (revoked_.contains(known->cert.serial()))
    return std::unexpected(err(
        oe::unknown_signer,
        "cert serial " + std::to_string(known->cert.serial()) + " of " + signer + " is revoked"));
  if (at < known->cert.not_before_ms() || at > known->cert.not_after_ms())
    return std::unexpected(
        err(oe::stale, "cert of " + signer + " is not valid at " + std::to_string(at)));
  return known;
}

std::optional<core::UnverifiedOrigin> ProductionOpener::peek(const std::string& envelope) const {
  v1::Envelope env;
  if (!env.ParseFromString(envelope)) return std::nullopt;
  auto signer = proto::peek_signer(env);
  if (!signer) return std::nullopt;  // open() names what is wrong with it
  return core::UnverifiedOrigin{std::move(signer->signer), signer->seq,
                                signer->kind == proto::SignKind::operator_decision};
}

Result<core::SignedEvent> ProductionOpener::open(const std::string& envelope, TimeMs now) {
  return open_impl(envelope, now, true);
}

Result<core::SignedEvent> ProductionOpener::open_evidence(const std::string& envelope, TimeMs now) {
  return open_impl(envelope, now, false);
}

Result<core::SignedEvent> ProductionOpener::open_impl(const std::string& bytes, TimeMs now,
                                                      bool fresh) {
  v1::Envelope env;
  if (!env.ParseFromString(bytes))
    return std::unexpected(count(err(oe::malformed, "envelope of " + std::to_string(bytes.size()) +
                                                        " bytes is not a protobuf Envelope")));
  auto signer = proto::peek_signer(env);
  if (!signer) return std::unexpected(count(err(oe::malformed, signer.error().message)));
  // issued_at is read before verifying only to pick the cert (evidence is checked against the
  // cert valid at that time); nothing decoded is used unless the signature verifies.
  auto cert = signer_cert(env, signer->signer, fresh ? now : signer->issued_at);
  if (!cert) return std::unexpected(count(cert.error()));
  const bool wants_operator = signer->kind == proto::SignKind::operator_decision;
  if (((*cert)->cert.role() == v1::ROLE_OPERATOR) != wants_operator)
    return std::unexpected(
        count(err(oe::unknown_signer,
                  who(*signer) + ": a " + std::string(proto::role_name((*cert)->cert.role())) +
                      " cert cannot sign a " + std::string(proto::to_string(signer->kind)))));
  if (auto v = proto::verify_envelope(env, (*cert)->key); !v)
    return std::unexpected(
        count(err(v.error().code == "bad_signature" ? oe::bad_signature : oe::malformed,
                  who(*signer) + ": " + v.error().message)));
  auto decoded = decode(env, **cert, now, fresh);
  if (!decoded) return std::unexpected(count(decoded.error()));
  ++stats_.opened;
  return decoded;
}

Result<core::SignedEvent> ProductionOpener::decode(const v1::Envelope& env, const KnownCert& signer,
                                                   TimeMs now, bool fresh) {
  core::SignedEvent ev;
  ev.kind = static_cast<core::EventKind>(env.kind());
  ev.origin = trust::Origin{signer.cert.node_id(), signer.cert.failure_domain()};
  ev.body_digest = digest_of(env.body());
  auto malformed = [&](std::string why) {
    return std::unexpected(err(oe::malformed, ev.origin.node + ": " + why));
  };
  auto decoded = proto::decode_event(env);
  if (!decoded) return malformed(decoded.error().message);
  ev.seq = decoded->seq;
  ev.issued_at = decoded->issued_at;
  auto too_old = [&](TimeMs until) { return fresh && until < now; };
  auto too_new = [&](TimeMs at) { return fresh && at > now + params_.max_future_ms; };
  auto stale = [&](std::string why) {
    return std::unexpected(
        err(oe::stale, ev.origin.node + "/" + std::to_string(ev.seq) + ": " + why));
  };

  if (auto* c = std::get_if<proto::ClaimContent>(&decoded->content)) {
    trust::ClaimFacts f{.origin = ev.origin,
                        .seq = ev.seq,
                        .prefix = c->prefix,
                        .direction = c->direction,
                        .detector = std::move(c->detector),
                        .severity = c->severity,
                        .confidence = c->confidence,
                        .issued_at = ev.issued_at,
                        .requested_ttl = c->ttl};
    if (auto v = trust::validate(f); !v) return malformed(v.error().message);
    if (too_new(f.issued_at)) return stale("issued in the future");
    if (too_old(f.issued_at + std::min(f.requested_ttl, params_.ttl_max_ms)))
      return stale("expired");
    ev.body = std::move(f);
  } else if (auto* r = std::get_if<proto::RetractionContent>(&decoded->content)) {
    if (too_new(ev.issued_at)) return stale("issued in the future");
    if (too_old(ev.issued_at + params_.ttl_max_ms)) return stale("older than ttl_max");
    ev.body = core::RetractionBody{r->claim_seq, r->prefix, std::move(r->reason)};
  } else if (auto* d = std::get_if<proto::DecisionContent>(&decoded->content)) {
    const DurationMs ttl =
        d->ttl > 0 ? std::min(d->ttl, params_.operator_ttl_max_ms) : params_.operator_ttl_max_ms;
    trust::OperatorDecision od{.action = d->action,
                               .prefix = d->prefix,
                               .direction = d->direction,
                               .expires_at = ev.issued_at + ttl,
                               .false_positive = d->false_positive,
                               .reason = std::move(d->reason)};
    if (too_new(ev.issued_at)) return stale("issued in the future");
    if (too_old(od.expires_at)) return stale("expired");
    ev.body = std::move(od);
  } else {
    auto& p = std::get<proto::ProofContent>(decoded->content);
    core::ProofBody body{.accused = std::move(p.accused),
                         .kind = p.kind,
                         .evidence = {},
                         .detail = std::move(p.detail)};
    for (auto& e : p.evidence) body.evidence.push_back(core::make_envelope(std::move(e)));
    if (too_new(ev.issued_at)) return stale("issued in the future");
    if (too_old(ev.issued_at + params_.quarantine_ms))
      return stale("older than the quarantine period");
    ev.body = std::move(body);
  }
  return ev;
}

}  // namespace meshd::app
