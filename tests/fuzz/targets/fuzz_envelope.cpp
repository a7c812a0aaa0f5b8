// Envelope / claim / retraction / operator decision / misbehaviour proof: open and verify,
// through proto/envelope.hpp and the daemon's ProductionOpener (cert check, signature,
// freshness, decode to domain types). Input byte 0 picks the mode:
//   0 (even): the rest is a received Envelope;
//   odd: the rest is a body, signed here with a valid key as kind (byte0 / 2) % 4, so that
//        arbitrary bodies reach the verified decode paths.
// Properties: opening the same bytes twice (the second time with the signer's cert cached)
// gives the same result; an opened event names the signer peek_signer() read and carries
// its seq; a verified envelope re-verifies after serialize -> parse; verify + decode equals
// open_*; a body signed with the signer's own valid key never fails as bad_signature.
#include <cstdint>
#include <string>

#include "meshd/app/opener.hpp"
#include "proto/convert.hpp"
#include "proto/envelope.hpp"
#include "tests/fuzz/targets/fixed_identities.hpp"
#include "tests/fuzz/targets/fuzz_check.hpp"

namespace {

using namespace meshd;
using proto::SignKind;

bool same(const Result<core::SignedEvent>& a, const Result<core::SignedEvent>& b) {
  if (a.has_value() != b.has_value()) return false;
  if (!a) return a.error().code == b.error().code;
  return a->kind == b->kind && a->origin == b->origin && a->seq == b->seq &&
         a->body_digest == b->body_digest && a->issued_at == b->issued_at &&
         a->body.index() == b->body.index();
}

template <class Decode, class Open>
void decode_equals_open(const v1::Envelope& env, const proto::PublicKey& key, Decode decode,
                        Open open) {
  auto d = decode(env);
  auto o = open(env, key);
  if (o) {
    FUZZ_CHECK(d.has_value());
    FUZZ_CHECK(d->SerializeAsString() == o->SerializeAsString());
    FUZZ_CHECK(proto::verify_envelope(env, key).has_value());
  }
  if (d && proto::verify_envelope(env, key)) FUZZ_CHECK(o.has_value());
}

void check_envelope(const std::string& bytes, const trust::Params& params) {
  v1::Envelope env;
  const bool parses = env.ParseFromString(bytes);

  app::ProductionOpener opener(fuzz::ca_key().public_key(), params);
  auto first = opener.open(bytes, fuzz::kNow);
  auto second = opener.open(bytes, fuzz::kNow);
  FUZZ_CHECK(same(first, second));
  auto evidence = opener.open_evidence(bytes, fuzz::kNow);
  if (first) {
    FUZZ_CHECK(parses);
    auto who = proto::peek_signer(env);
    FUZZ_CHECK(who.has_value());
    FUZZ_CHECK(first->origin.node == who->signer);
    FUZZ_CHECK(first->seq == who->seq);
    FUZZ_CHECK(evidence.has_value() || evidence.error().code == "stale");
  }
  (void)opener.event_id(bytes);
  if (!parses) return;

  for (const auto* key : {&fuzz::node_a_key(), &fuzz::operator_key()}) {
    const auto pk = key->public_key();
    if (proto::verify_envelope(env, pk)) {
      v1::Envelope again;
      FUZZ_CHECK(again.ParseFromString(env.SerializeAsString()));
      FUZZ_CHECK(proto::verify_envelope(again, pk).has_value());
    }
    decode_equals_open(env, pk, proto::decode_claim, proto::open_claim);
    decode_equals_open(env, pk, proto::decode_retraction, proto::open_retraction);
    decode_equals_open(env, pk, proto::decode_operator_decision, proto::open_operator_decision);
    decode_equals_open(env, pk, proto::decode_misbehaviour_proof, proto::open_misbehaviour_proof);
  }
  if (auto c = proto::decode_claim(env); c && c->has_target()) {
    if (auto p = proto::to_prefix(c->target())) {
      auto back = proto::to_prefix(proto::to_cidr(*p));
      FUZZ_CHECK(back.has_value() && *back == *p);
    }
  }
  if (auto p = proto::decode_misbehaviour_proof(env)) {
    for (const auto& e : p->evidence()) {
      (void)proto::peek_signer(e);
      (void)opener.open_evidence(e.SerializeAsString(), fuzz::kNow);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  static const trust::Params params;
  const std::uint8_t mode = data[0];
  std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  if (mode % 2 == 0) {
    check_envelope(rest, params);
    return 0;
  }
  static constexpr SignKind kinds[] = {SignKind::claim, SignKind::retraction,
                                       SignKind::operator_decision, SignKind::misbehaviour_proof};
  const SignKind kind = kinds[(mode / 2) % 4];
  const bool op = kind == SignKind::operator_decision;
  v1::Envelope env =
      proto::sign_envelope(kind, rest, op ? fuzz::operator_key() : fuzz::node_a_key());
  *env.mutable_signer_cert() = op ? fuzz::operator_cert() : fuzz::node_a_cert();
  const std::string bytes = env.SerializeAsString();
  app::ProductionOpener opener(fuzz::ca_key().public_key(), params);
  auto opened = opener.open(bytes, fuzz::kNow);
  auto who = proto::peek_signer(env);
  if (who && who->signer == (op ? "alice" : "node-a"))
    FUZZ_CHECK(opened.has_value() || opened.error().code != "bad_signature");
  check_envelope(bytes, params);
  return 0;
}
