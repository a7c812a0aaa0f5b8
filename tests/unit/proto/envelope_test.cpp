#include "proto/envelope.hpp"
#include "proto/convert.hpp"

#include <gtest/gtest.h>

#include <string>

namespace meshd::proto {
namespace {

v1::Claim sample_claim() {
  v1::Claim c;
  c.set_origin("node-a");
  c.set_seq(7);
  *c.mutable_target() = to_cidr(*Prefix::parse("203.0.113.0/24"));
  c.set_direction(v1::DIRECTION_EGRESS);
  c.set_detector("threatfeed");
  c.set_severity(v1::SEVERITY_HIGH);
  c.set_confidence(0.9);
  c.set_issued_at_ms(1'700'000'000'000);
  c.set_ttl_ms(3'600'000);
  c.mutable_context()->set_pod("web-1");
  return c;
}

TEST(Envelope, ClaimRoundTripsThroughSignAndOpen) {
  auto key = SecretKey::generate();
  auto env = sign_claim(sample_claim(), key);
  EXPECT_EQ(env.kind(), v1::BODY_KIND_CLAIM);
  auto claim = open_claim(env, key.public_key());
  ASSERT_TRUE(claim) << claim.error().message;
  EXPECT_EQ(claim->origin(), "node-a");
  EXPECT_EQ(claim->seq(), 7u);
  EXPECT_EQ(to_prefix(claim->target())->to_string(), "203.0.113.0/24");
  EXPECT_EQ(claim->context().pod(), "web-1");
}

TEST(Envelope, OpenReturnsTheExactSignedBytes) {
  auto key = SecretKey::generate();
  auto env = sign_claim(sample_claim(), key);
  auto body = open_envelope(SignKind::claim, env, key.public_key());
  ASSERT_TRUE(body);
  EXPECT_EQ(body->data(), env.body().data());  // a view, no copy
  EXPECT_EQ(*body, env.body());
}

TEST(Envelope, SurvivesTheWireAndEventIdIsOfTheBytes) {
  auto key = SecretKey::generate();
  auto env = sign_claim(sample_claim(), key);
  std::string wire = env.SerializeAsString();
  v1::Envelope received;
  ASSERT_TRUE(received.ParseFromString(wire));
  EXPECT_TRUE(verify_envelope(received, key.public_key()));
  EXPECT_EQ(event_id_of(received), event_id(as_bytes(wire)));
  auto other = sign_claim(sample_claim(), SecretKey::generate());
  EXPECT_NE(event_id_of(other), event_id_of(received));
}

TEST(Envelope, WrongKeyFails) {
  auto env = sign_claim(sample_claim(), SecretKey::generate());
  auto r = open_claim(env, SecretKey::generate().public_key());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "bad_signature");
}

TEST(Envelope, RelabellingTheKindBreaksTheSignature) {
  // A claim body re-tagged as a retraction (whose parser would accept the same field
  // numbers) must not verify: the kind is bound by the signature's domain prefix.
  auto key = SecretKey::generate();
  auto env = sign_claim(sample_claim(), key);
  env.set_kind(v1::BODY_KIND_RETRACTION);
  auto r = open_retraction(env, key.public_key());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "bad_signature");
  EXPECT_FALSE(verify_envelope(env, key.public_key()));
}

TEST(Envelope, OpeningAsTheWrongKindIsWrongKind) {
  auto key = SecretKey::generate();
  auto env = sign_claim(sample_claim(), key);
  auto r = open_operator_decision(env, key.public_key());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "wrong_kind");
  EXPECT_NE(r.error().message.find("claim"), std::string::npos);
  env.set_kind(v1::BODY_KIND_UNSPECIFIED);
  EXPECT_EQ(verify_envelope(env, key.public_key()).error().code, "wrong_kind");
  env.set_kind(static_cast<v1::BodyKind>(99));
  EXPECT_EQ(peek_signer(env).error().code, "wrong_kind");
}

TEST(Envelope, EveryBitFlipOfASignedClaimEnvelopeFails) {
  auto key = SecretKey::generate();
  auto env = sign_claim(sample_claim(), key);
  const std::string body = env.body();
  const std::string sig = env.signature();
  for (std::size_t bit = 0; bit < body.size() * 8; ++bit) {
    v1::Envelope e = env;
    std::string b = body;
    b[bit / 8] = static_cast<char>(b[bit / 8] ^ (1 << (bit % 8)));
    e.set_body(b);
    ASSERT_FALSE(open_claim(e, key.public_key())) << "body bit " << bit;
  }
  for (std::size_t bit = 0; bit < sig.size() * 8; ++bit) {
    v1::Envelope e = env;
    std::string s = sig;
    s[bit / 8] = static_cast<char>(s[bit / 8] ^ (1 << (bit % 8)));
    e.set_signature(s);
    ASSERT_FALSE(open_claim(e, key.public_key())) << "signature bit " << bit;
  }
}

TEST(Envelope, AllKindsSignOpenAndNameTheirSigner) {
  auto key = SecretKey::generate();
  v1::Retraction r;
  r.set_origin("node-a");
  r.set_seq(8);
  r.set_claim_seq(7);
  v1::OperatorDecision d;
  d.set_operator_id("alice");
  d.set_seq(3);
  d.set_action(v1::OPERATOR_ACTION_ALLOW);
  v1::MisbehaviourProof p;
  p.set_reporter("node-b");
  p.set_seq(11);
  p.set_accused("node-a");
  p.set_kind(v1::MISBEHAVIOUR_KIND_EQUIVOCATION);
  *p.add_evidence() = sign_claim(sample_claim(), key);

  auto er = sign_retraction(r, key);
  auto ed = sign_operator_decision(d, key);
  auto ep = sign_misbehaviour_proof(p, key);
  ASSERT_TRUE(open_retraction(er, key.public_key()));
  ASSERT_TRUE(open_operator_decision(ed, key.public_key()));
  auto proof = open_misbehaviour_proof(ep, key.public_key());
  ASSERT_TRUE(proof);
  // Evidence inside a proof is itself verifiable.
  EXPECT_TRUE(open_claim(proof->evidence(0), key.public_key()));

  auto s1 = peek_signer(er);
  auto s2 = peek_signer(ed);
  auto s3 = peek_signer(ep);
  auto s4 = peek_signer(sign_claim(sample_claim(), key));
  ASSERT_TRUE(s1 && s2 && s3 && s4);
  EXPECT_EQ(s1->signer, "node-a");
  EXPECT_EQ(s1->seq, 8u);
  EXPECT_EQ(s2->signer, "alice");
  EXPECT_EQ(s2->kind, SignKind::operator_decision);
  EXPECT_EQ(s3->signer, "node-b");
  EXPECT_EQ(s3->seq, 11u);
  EXPECT_EQ(s4->seq, 7u);
}

TEST(Envelope, GarbageBodyIsUndecodableAndUnsignedBodyNamesNoSigner) {
  v1::Envelope env;
  env.set_kind(v1::BODY_KIND_CLAIM);
  env.set_body(std::string("\xff\xff\xff\xff\xff\x01", 6));
  EXPECT_EQ(decode_claim(env).error().code, "undecodable_body");
  EXPECT_EQ(peek_signer(env).error().code, "undecodable_body");
  env.set_body("");
  EXPECT_EQ(peek_signer(env).error().code, "undecodable_body");
}

TEST(WireCidr, CidrRoundTripsV4AndV6) {
  for (const char* text :
       {"10.0.0.0/8", "192.0.2.1/32", "0.0.0.0/0", "2001:db8::/32", "2001:db8::1/128", "::/0"}) {
    auto p = Prefix::parse(text);
    ASSERT_TRUE(p) << text;
    auto back = to_prefix(to_cidr(*p));
    ASSERT_TRUE(back) << text << ": " << back.error().message;
    EXPECT_EQ(*back, *p) << text;
  }
  EXPECT_EQ(to_cidr(*Prefix::parse("10.0.0.0/8")).addr().size(), 4u);
  EXPECT_EQ(to_cidr(*Prefix::parse("2001:db8::/32")).addr().size(), 16u);
}

TEST(WireCidr, MalformedWireCidrIsRejected) {
  v1::Cidr c;
  c.set_addr(std::string(5, '\0'));
  c.set_prefix_len(8);
  EXPECT_EQ(to_prefix(c).error().code, "bad_prefix");
  c.set_addr(std::string(4, '\0'));
  c.set_prefix_len(33);
  EXPECT_EQ(to_prefix(c).error().code, "bad_prefix");
  c.set_addr(std::string("\x0a\x00\x00\x01", 4));
  c.set_prefix_len(8);  // 10.0.0.1/8: host bits set
  EXPECT_EQ(to_prefix(c).error().code, "bad_prefix");
}

TEST(WireDirection, WireValuesMatchTrustValues) {
  for (auto d : {Direction::egress, Direction::ingress, Direction::both}) {
    EXPECT_EQ(*to_direction(to_wire(d)), d);
  }
  EXPECT_EQ(to_direction(v1::DIRECTION_UNSPECIFIED).error().code, "bad_direction");
}

}  // namespace
}  // namespace meshd::proto
