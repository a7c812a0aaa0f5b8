#include "tests/fuzz/proto/fuzz_body.hpp"

#include <cstring>

#include "proto/cert.hpp"
#include "proto/convert.hpp"
#include "proto/envelope.hpp"
#include "proto/frame.hpp"

namespace meshd::proto::fuzz {

namespace {

// Fixed keys so signed seeds verify and mutations exercise both outcomes.
const SecretKey& node_key() {
  static const SecretKey k = *SecretKey::from_seed(std::vector<std::uint8_t>(32, 7));
  return k;
}
const SecretKey& ca_key() {
  static const SecretKey k = *SecretKey::from_seed(std::vector<std::uint8_t>(32, 9));
  return k;
}

void exercise_envelope(const v1::Envelope& env, Reached& out) {
  (void)event_id_of(env);
  (void)peek_signer(env);
  if (verify_envelope(env, node_key().public_key())) ++out.verified;
  for (auto kind : {SignKind::claim, SignKind::retraction, SignKind::operator_decision,
                    SignKind::misbehaviour_proof}) {
    (void)open_envelope(kind, env, node_key().public_key());
  }
  if (auto c = decode_claim(env)) {
    (void)to_prefix(c->target());
    (void)to_direction(c->direction());
  }
  if (auto r = decode_retraction(env); r && r->has_prefix()) (void)to_prefix(r->prefix());
  if (auto d = decode_operator_decision(env)) (void)to_prefix(d->target());
  if (auto p = decode_misbehaviour_proof(env)) {
    for (const auto& e : p->evidence()) (void)peek_signer(e);
  }
}

void exercise_frame(const v1::Frame& f, Reached& out) {
  ++out.frames;
  switch (f.payload_case()) {
    case v1::Frame::kEnvelope:
      exercise_envelope(f.envelope(), out);
      break;
    case v1::Frame::kRangeResponse:
      for (const auto& e : f.range_response().envelopes()) exercise_envelope(e, out);
      break;
    case v1::Frame::kHello: {
      (void)decode_cert(f.hello().cert());
      (void)verify_cert(f.hello().cert(), ca_key().public_key(), 1'700'000'000'000, v1::ROLE_NODE);
      break;
    }
    default:
      break;
  }
}

}  // namespace

Reached fuzz_one(const std::uint8_t* data, std::size_t size) {
  Reached out;
  // 1. The whole input as one Frame payload.
  if (auto f = parse_frame(Bytes(data, size)))
    exercise_frame(*f, out);
  else
    ++out.rejected;

  // 2. The input as a byte stream, fed in chunks whose sizes come from the input itself.
  FrameDecoder dec(64 * 1024);
  std::size_t pos = 0;
  std::size_t step = size > 0 ? (data[0] % 17) + 1 : 1;
  while (pos < size) {
    std::size_t n = std::min(step, size - pos);
    dec.feed(Bytes(data + pos, n));
    pos += n;
    step = (step * 7 + 3) % 29 + 1;
    for (;;) {
      auto r = dec.next();
      if (!r) ++out.rejected;
      if (!r || !r->has_value()) break;
      if (auto f = parse_frame(**r))
        exercise_frame(*f, out);
      else
        ++out.rejected;
    }
    if (dec.poisoned()) break;
  }
  return out;
}

std::vector<std::vector<std::uint8_t>> seed_inputs() {
  std::vector<std::vector<std::uint8_t>> seeds;
  auto add = [&](const v1::Frame& f) { seeds.push_back(encode_frame(f)); };

  v1::Claim c;
  c.set_origin("node-a");
  c.set_seq(1);
  *c.mutable_target() = to_cidr(*Prefix::parse("198.51.100.0/24"));
  c.set_direction(v1::DIRECTION_BOTH);
  c.set_confidence(0.8);
  v1::Frame f;
  *f.mutable_envelope() = sign_claim(c, node_key());
  add(f);

  v1::Retraction r;
  r.set_origin("node-a");
  r.set_seq(2);
  *r.mutable_prefix() = to_cidr(*Prefix::parse("2001:db8::/48"));
  v1::Frame fr;
  auto* rr = fr.mutable_range_response();
  *rr->add_envelopes() = sign_retraction(r, node_key());
  *rr->add_envelopes() = sign_claim(c, node_key());
  add(fr);

  v1::NodeCert cert;
  cert.set_node_id("node-a");
  cert.set_public_key(std::string(node_key().public_key().view()));
  cert.set_role(v1::ROLE_NODE);
  cert.set_not_before_ms(0);
  cert.set_not_after_ms(2'000'000'000'000);
  v1::Frame fh;
  *fh.mutable_hello()->mutable_cert() = sign_cert(cert, ca_key());
  fh.mutable_hello()->set_ephemeral_pk(std::string(32, 'k'));
  add(fh);

  v1::Frame fv;
  auto* e = fv.mutable_version_vector()->add_entries();
  e->set_origin("node-a");
  e->set_max_contiguous_seq(2);
  add(fv);

  // Several frames back to back.
  std::vector<std::uint8_t> all;
  for (const auto& s : seeds) all.insert(all.end(), s.begin(), s.end());
  seeds.push_back(all);
  return seeds;
}

}  // namespace meshd::proto::fuzz
