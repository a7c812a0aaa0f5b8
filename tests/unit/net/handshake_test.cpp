// The handshake and the pieces under it, without sockets: secretstream, rate limiter,
// back-off, seed parsing.
#include <gtest/gtest.h>

#include "meshd/net/backoff.hpp"
#include "meshd/net/handshake.hpp"
#include "meshd/net/rate_limiter.hpp"
#include "meshd/net/secret_stream.hpp"
#include "meshd/net/seeds.hpp"
#include "tests/unit/net/net_test_support.hpp"

namespace meshd::net {
namespace {

using namespace std::chrono_literals;
using testing::CertSpec;
using testing::make_node;
using testing::TestCa;

std::vector<std::uint8_t> bytes_of(std::string_view s) {
  return {s.begin(), s.end()};
}

const std::function<bool(std::uint64_t)> no_revocations = [](std::uint64_t) { return false; };

struct Pair {
  Session initiator;
  Session responder;
};

// Runs both sides to completion; any failure is returned.
HandshakeResult<Pair> run_handshake(
    const LocalIdentity& a, const LocalIdentity& b,
    const std::function<bool(std::uint64_t)>& revoked = no_revocations) {
  Handshake i(HandshakeRole::initiator, a);
  Handshake r(HandshakeRole::responder, b);
  if (auto c = r.on_peer_hello(proto::as_bytes(i.hello()), wall_now_ms(), revoked); !c) {
    return std::unexpected(c.error());
  }
  if (auto c = i.on_peer_hello(proto::as_bytes(r.hello()), wall_now_ms(), revoked); !c) {
    return std::unexpected(c.error());
  }
  auto ia = i.auth();
  auto ra = r.auth();
  if (!ia) return std::unexpected(ia.error());
  if (!ra) return std::unexpected(ra.error());
  auto rs = r.on_peer_auth(proto::as_bytes(*ia));
  if (!rs) return std::unexpected(rs.error());
  auto is = i.on_peer_auth(proto::as_bytes(*ra));
  if (!is) return std::unexpected(is.error());
  return Pair{std::move(*is), std::move(*rs)};
}

TEST(Handshake, EstablishesKeysThatWorkBothWays) {
  TestCa ca;
  auto a = make_node(ca, "node-a");
  auto b = make_node(ca, "node-b");
  auto pair = run_handshake(a, b);
  ASSERT_TRUE(pair) << pair.error().message;
  std::vector<std::uint8_t> wire, out;
  pair->initiator.tx.seal(bytes_of("hello responder"), wire);
  ASSERT_TRUE(pair->responder.rx.unseal(wire, out));
  EXPECT_EQ(out, bytes_of("hello responder"));
  wire.clear();
  pair->responder.tx.seal(bytes_of("hello initiator"), wire);
  ASSERT_TRUE(pair->initiator.rx.unseal(wire, out));
  EXPECT_EQ(out, bytes_of("hello initiator"));
}

TEST(Handshake, RefusesCertFromAnotherCa) {
  TestCa ca, other;
  auto a = make_node(ca, "node-a");
  auto mallory = make_node(other, ca, "mallory");
  auto pair = run_handshake(mallory, a);
  ASSERT_FALSE(pair);
  EXPECT_EQ(pair.error().reason, HandshakeFailure::cert_bad_signature);
}

TEST(Handshake, RefusesExpiredAndNotYetValidCerts) {
  TestCa ca;
  auto a = make_node(ca, "node-a");
  auto expired =
      make_node(ca, "old",
                CertSpec{.not_before = wall_now_ms() - 10'000, .not_after = wall_now_ms() - 5'000});
  auto early = make_node(ca, "early", CertSpec{.not_before = wall_now_ms() + 60'000});
  auto r1 = run_handshake(expired, a);
  ASSERT_FALSE(r1);
  EXPECT_EQ(r1.error().reason, HandshakeFailure::cert_expired);
  auto r2 = run_handshake(early, a);
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().reason, HandshakeFailure::cert_not_yet_valid);
}

TEST(Handshake, RefusesOperatorCertAsPeer) {
  TestCa ca;
  auto a = make_node(ca, "node-a");
  auto op = make_node(ca, "operator", CertSpec{.role = v1::ROLE_OPERATOR});
  auto r = run_handshake(op, a);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().reason, HandshakeFailure::cert_wrong_role);
}

TEST(Handshake, RefusesRevokedSerial) {
  TestCa ca;
  auto a = make_node(ca, "node-a", CertSpec{.serial = 7});
  auto b = make_node(ca, "node-b", CertSpec{.serial = 42});
  auto r = run_handshake(a, b, [](std::uint64_t s) { return s == 7; });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().reason, HandshakeFailure::cert_revoked);
}

TEST(Handshake, RefusesOurOwnNodeId) {
  TestCa ca;
  auto a = make_node(ca, "node-a");
  auto a2 = make_node(ca, "node-a");
  auto r = run_handshake(a, a2);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().reason, HandshakeFailure::self_connection);
}

// A stolen cert without its key: the Hello replays the victim's cert, but the transcript
// signature is made with the thief's key.
TEST(Handshake, RefusesCertWithoutItsKey) {
  TestCa ca;
  auto victim = make_node(ca, "victim");
  auto a = make_node(ca, "node-a");
  auto thief = make_node(ca, "thief");
  LocalIdentity impostor{std::move(thief.key), victim.cert, victim.node_cert, ca.public_key()};
  auto r = run_handshake(impostor, a);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().reason, HandshakeFailure::bad_transcript_signature);
}

// The initiator's signature must not be reusable as the responder's: transcripts differ by
// the signer role byte.
TEST(Handshake, TranscriptBindsSignerRole) {
  EXPECT_NE(Handshake::transcript(HandshakeRole::initiator, "I", "R"),
            Handshake::transcript(HandshakeRole::responder, "I", "R"));
  EXPECT_NE(Handshake::transcript(HandshakeRole::initiator, "IR", ""),
            Handshake::transcript(HandshakeRole::initiator, "I", "R"));
}

TEST(Handshake, RejectsGarbageAndGoodbye) {
  TestCa ca;
  auto a = make_node(ca, "node-a");
  Handshake r(HandshakeRole::responder, a);
  auto g = r.on_peer_hello(proto::as_bytes("\xff\xff\xff garbage"), wall_now_ms(), no_revocations);
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().reason, HandshakeFailure::malformed);
  v1::Frame bye;
  bye.mutable_goodbye()->set_reason("refused: banned");
  Handshake r2(HandshakeRole::responder, a);
  auto b =
      r2.on_peer_hello(proto::as_bytes(bye.SerializeAsString()), wall_now_ms(), no_revocations);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().reason, HandshakeFailure::peer_refused);
  EXPECT_NE(b.error().message.find("banned"), std::string::npos);
}

TEST(Handshake, RejectsWrongProtocolVersion) {
  TestCa ca;
  auto a = make_node(ca, "node-a");
  auto b = make_node(ca, "node-b");
  Handshake i(HandshakeRole::initiator, b);
  v1::Frame hello;
  ASSERT_TRUE(hello.ParseFromString(i.hello()));
  hello.mutable_hello()->set_protocol_version(2);
  Handshake r(HandshakeRole::responder, a);
  auto res =
      r.on_peer_hello(proto::as_bytes(hello.SerializeAsString()), wall_now_ms(), no_revocations);
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().reason, HandshakeFailure::protocol_version);
}

TEST(SecretStream, RejectsTamperingReplayAndReorder) {
  StreamKey key{};
  randombytes_buf(key.data(), key.size());
  SecretStreamPush push(key);
  auto pull = SecretStreamPull::open(push.header(), key);
  ASSERT_TRUE(pull);
  std::vector<std::uint8_t> f1, f2, out;
  push.seal(bytes_of("one"), f1);
  push.seal(bytes_of("two"), f2);
  auto tampered = f1;
  tampered[5] ^= 1;
  auto pull2 = SecretStreamPull::open(push.header(), key);
  EXPECT_FALSE(pull2->unseal(tampered, out));
  auto pull3 = SecretStreamPull::open(push.header(), key);
  EXPECT_FALSE(pull3->unseal(f2, out)) << "out of order must fail";
  ASSERT_TRUE(pull->unseal(f1, out));
  EXPECT_FALSE(pull->unseal(f1, out)) << "replay must fail";
  std::vector<std::uint8_t> tiny{1, 2, 3};
  auto e = pull->unseal(tiny, out);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, "decrypt_failed");
  EXPECT_FALSE(SecretStreamPull::open(std::span<const std::uint8_t>(tiny), key));
}

TEST(RateLimiter, FramesAndBytesBucketsRefillOverTime) {
  FrameRateLimiter lim(
      RateLimit{.frames_per_s = 10, .frames_burst = 5, .bytes_per_s = 1000, .bytes_burst = 2000});
  const auto t0 = std::chrono::nanoseconds(1'000'000'000);
  int passed = 0;
  for (int i = 0; i < 20; ++i) passed += lim.allow(10, t0);
  EXPECT_EQ(passed, 5);  // frame burst
  EXPECT_FALSE(lim.allow(10, t0 + 50ms));
  EXPECT_TRUE(lim.allow(10, t0 + 100ms));  // one frame per 100 ms
  // Byte bucket: a refused frame takes no frame token.
  FrameRateLimiter bytes(
      RateLimit{.frames_per_s = 100, .frames_burst = 2, .bytes_per_s = 100, .bytes_burst = 100});
  EXPECT_FALSE(bytes.allow(150, t0));
  EXPECT_TRUE(bytes.allow(100, t0));
  EXPECT_TRUE(bytes.allow(0, t0));
  EXPECT_FALSE(bytes.allow(0, t0));
  // Unlimited.
  FrameRateLimiter none;
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(none.allow(1 << 20, t0));
}

TEST(Backoff, GrowsExponentiallyWithJitterUpToCap) {
  BackoffPolicy p{200ms, 30000ms};
  EXPECT_EQ(backoff_delay(p, 1, 0.0), 100ms);
  EXPECT_EQ(backoff_delay(p, 1, 1.0), 200ms);
  EXPECT_EQ(backoff_delay(p, 2, 1.0), 400ms);
  EXPECT_EQ(backoff_delay(p, 4, 0.5), 1200ms);
  EXPECT_EQ(backoff_delay(p, 30, 1.0), 30000ms);
  EXPECT_EQ(backoff_delay(p, 1000, 0.0), 15000ms);
  EXPECT_EQ(backoff_delay(p, 0, 1.0), 200ms);
}

TEST(Seeds, ParsesHostDnsAndBracketedV6) {
  auto a = parse_seed("10.0.0.1:7946");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->kind, Seed::Kind::host);
  EXPECT_EQ(a->host, "10.0.0.1");
  EXPECT_EQ(a->port, 7946);
  auto d = parse_seed("dns:meshd.kube-system.svc.cluster.local:7946");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, Seed::Kind::dns);
  EXPECT_EQ(d->host, "meshd.kube-system.svc.cluster.local");
  auto v6 = parse_seed("[fd00::1]:80");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "fd00::1");
  for (const char* bad : {"nohost", "host:", "host:0", "host:70000", ":80", "dns:name", "[fd00::1",
                          "[fd00::1]80", "fd00::1:80", "host:8x"}) {
    auto r = parse_seed(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, "bad_seed");
    EXPECT_NE(r.error().message.find(bad), std::string::npos) << r.error().message;
  }
}

}  // namespace
}  // namespace meshd::net
