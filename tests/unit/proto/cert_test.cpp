#include "proto/cert.hpp"

#include <gtest/gtest.h>

#include "proto/keys.hpp"
#include "tests/unit/proto/test_util.hpp"

namespace meshd::proto {
namespace {

constexpr TimeMs kNow = 1'700'000'000'000;
constexpr TimeMs kDay = 86'400'000;

v1::NodeCert make_cert(const PublicKey& node_key, v1::Role role = v1::ROLE_NODE) {
  v1::NodeCert c;
  c.set_node_id("node-a");
  c.set_public_key(std::string(node_key.view()));
  c.set_failure_domain("zone-1");
  c.set_role(role);
  c.set_not_before_ms(kNow - kDay);
  c.set_not_after_ms(kNow + kDay);
  c.set_serial(1234);
  return c;
}

TEST(Cert, ValidCertVerifiesAndDecodes) {
  auto ca = SecretKey::generate();
  auto node = SecretKey::generate();
  auto sc = sign_cert(make_cert(node.public_key()), ca);
  auto cert = verify_cert(sc, ca.public_key(), kNow, v1::ROLE_NODE);
  ASSERT_TRUE(cert) << cert.error().message;
  EXPECT_EQ(cert->node_id(), "node-a");
  EXPECT_EQ(cert->failure_domain(), "zone-1");
  EXPECT_EQ(*cert_public_key(*cert), node.public_key());
  // Inclusive window edges.
  EXPECT_TRUE(verify_cert(sc, ca.public_key(), kNow - kDay));
  EXPECT_TRUE(verify_cert(sc, ca.public_key(), kNow + kDay));
}

TEST(Cert, ExpiredCertFails) {
  auto ca = SecretKey::generate();
  auto sc = sign_cert(make_cert(SecretKey::generate().public_key()), ca);
  auto r = verify_cert(sc, ca.public_key(), kNow + kDay + 1);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "cert_expired");
  EXPECT_NE(r.error().message.find("node-a"), std::string::npos) << r.error().message;
}

TEST(Cert, NotYetValidCertFails) {
  auto ca = SecretKey::generate();
  auto sc = sign_cert(make_cert(SecretKey::generate().public_key()), ca);
  auto r = verify_cert(sc, ca.public_key(), kNow - kDay - 1);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "cert_not_yet_valid");
}

TEST(Cert, CertFromAnotherCaFails) {
  auto ca = SecretKey::generate();
  auto rogue = SecretKey::generate();
  auto sc = sign_cert(make_cert(SecretKey::generate().public_key()), rogue);
  auto r = verify_cert(sc, ca.public_key(), kNow);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "cert_bad_signature");
  EXPECT_NE(r.error().message.find(ca.public_key().fingerprint()), std::string::npos);
}

TEST(Cert, WrongRoleFails) {
  auto ca = SecretKey::generate();
  auto node_cert = sign_cert(make_cert(SecretKey::generate().public_key()), ca);
  auto r = verify_cert(node_cert, ca.public_key(), kNow, v1::ROLE_OPERATOR);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "cert_wrong_role");
  auto op_cert = sign_cert(make_cert(SecretKey::generate().public_key(), v1::ROLE_OPERATOR), ca);
  EXPECT_TRUE(verify_cert(op_cert, ca.public_key(), kNow, v1::ROLE_OPERATOR));
  EXPECT_EQ(verify_cert(op_cert, ca.public_key(), kNow, v1::ROLE_NODE).error().code,
            "cert_wrong_role");
}

TEST(Cert, AlteredBodyFailsEvenWhenItStillParses) {
  auto ca = SecretKey::generate();
  auto sc = sign_cert(make_cert(SecretKey::generate().public_key()), ca);
  // Extend the validity: parse, change, re-serialize, keep the old signature.
  v1::NodeCert c = *decode_cert(sc);
  c.set_not_after_ms(kNow + 365 * kDay);
  sc.set_cert_body(c.SerializeAsString());
  EXPECT_EQ(verify_cert(sc, ca.public_key(), kNow).error().code, "cert_bad_signature");
}

TEST(Cert, NodeCertSignatureIsNotAClaimSignature) {
  // The CA key signing a cert body must not yield something that verifies as a claim.
  auto ca = SecretKey::generate();
  auto sc = sign_cert(make_cert(SecretKey::generate().public_key()), ca);
  EXPECT_FALSE(verify(SignKind::claim, as_bytes(sc.cert_body()), as_bytes(sc.ca_signature()),
                      ca.public_key()));
}

TEST(Cert, MalformedCertsAreRejected) {
  auto ca = SecretKey::generate();
  v1::NodeCert c = make_cert(SecretKey::generate().public_key());
  c.set_public_key("short");
  EXPECT_EQ(verify_cert(sign_cert(c, ca), ca.public_key(), kNow).error().code, "cert_malformed");
  c = make_cert(SecretKey::generate().public_key(), v1::ROLE_UNSPECIFIED);
  EXPECT_EQ(verify_cert(sign_cert(c, ca), ca.public_key(), kNow).error().code, "cert_malformed");
}

TEST(Cert, FileRoundTripAndGarbageFile) {
  testing::TempDir dir;
  auto ca = SecretKey::generate();
  auto sc = sign_cert(make_cert(SecretKey::generate().public_key()), ca);
  ASSERT_TRUE(write_cert_file(dir / "node.cert", sc));
  auto loaded = load_cert_file(dir / "node.cert");
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_TRUE(verify_cert(*loaded, ca.public_key(), kNow));
  EXPECT_EQ(write_cert_file(dir / "node.cert", sc).error().code, "file_exists");

  ASSERT_TRUE(write_file_atomic(dir / "junk", "hello\n", 0644, false));
  EXPECT_EQ(load_cert_file(dir / "junk").error().code, "cert_format");
  EXPECT_EQ(load_cert_file(dir / "missing").error().code, "file_missing");
}

}  // namespace
}  // namespace meshd::proto
