#include "proto/crypto.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/unit/proto/test_util.hpp"

namespace meshd::proto {
namespace {

using testing::from_hex;

struct Rfc8032Vector {
  const char* name;
  const char* secret;
  const char* public_key;
  const char* message;
  const char* signature;
};

// RFC 8032 section 7.1, TEST 1-3.
const Rfc8032Vector kVectors[] = {
    {"TEST 1", "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
     "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
    {"TEST 2", "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
    {"TEST 3", "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
     "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
};

TEST(Rfc8032, VectorsSignAndVerifyThroughRawPrimitive) {
  for (const auto& v : kVectors) {
    SCOPED_TRACE(v.name);
    auto seed = from_hex(v.secret);
    auto key = SecretKey::from_seed(seed);
    ASSERT_TRUE(key.has_value());
    EXPECT_EQ(to_hex(key->public_key().bytes), v.public_key);
    auto msg = from_hex(v.message);
    Signature sig = sign_raw(msg, *key);
    EXPECT_EQ(to_hex(sig), v.signature);
    EXPECT_TRUE(verify_raw(msg, from_hex(v.signature), key->public_key()));
    // The key file stores the seed: it must round-trip.
    EXPECT_EQ(to_hex(key->seed()), v.secret);
  }
}

TEST(Crypto, SeedOfWrongSizeIsRejected) {
  std::vector<std::uint8_t> short_seed(31, 1);
  auto key = SecretKey::from_seed(short_seed);
  ASSERT_FALSE(key.has_value());
  EXPECT_EQ(key.error().code, "bad_seed");
}

TEST(Crypto, MovedFromSecretKeyIsWiped) {
  auto a = SecretKey::generate();
  auto seed_before = to_hex(a.seed());
  SecretKey b(std::move(a));
  EXPECT_EQ(to_hex(b.seed()), seed_before);
  // NOLINTNEXTLINE(bugprone-use-after-move): checking the wipe is the point.
  EXPECT_EQ(to_hex(a.seed()), std::string(64, '0'));
}

TEST(Crypto, DomainSeparatedSignatureIsNotARawSignature) {
  auto key = SecretKey::generate();
  std::string body = "body bytes";
  Signature sig = sign(SignKind::claim, as_bytes(body), key);
  EXPECT_TRUE(verify(SignKind::claim, as_bytes(body), sig, key.public_key()).has_value());
  EXPECT_FALSE(verify_raw(as_bytes(body), sig, key.public_key()));
}

TEST(Crypto, SignatureForOneKindNeverVerifiesAsAnother) {
  const SignKind kinds[] = {SignKind::claim,
                            SignKind::retraction,
                            SignKind::operator_decision,
                            SignKind::misbehaviour_proof,
                            SignKind::node_cert,
                            SignKind::handshake};
  auto key = SecretKey::generate();
  std::string body = "same bytes for every kind";
  for (SignKind signed_as : kinds) {
    Signature sig = sign(signed_as, as_bytes(body), key);
    for (SignKind checked_as : kinds) {
      auto r = verify(checked_as, as_bytes(body), sig, key.public_key());
      EXPECT_EQ(r.has_value(), signed_as == checked_as)
          << to_string(signed_as) << " checked as " << to_string(checked_as);
      if (!r) {
        EXPECT_EQ(r.error().code, "bad_signature");
      }
    }
  }
}

TEST(Crypto, EveryBitFlipInBodySignatureOrKeyFailsVerification) {
  auto key = SecretKey::generate();
  std::string body = "claim: 203.0.113.0/24 egress, confidence 0.9";
  Signature sig = sign(SignKind::claim, as_bytes(body), key);
  ASSERT_TRUE(verify(SignKind::claim, as_bytes(body), sig, key.public_key()));

  for (std::size_t bit = 0; bit < body.size() * 8; ++bit) {
    std::string b = body;
    b[bit / 8] = static_cast<char>(b[bit / 8] ^ (1 << (bit % 8)));
    ASSERT_FALSE(verify(SignKind::claim, as_bytes(b), sig, key.public_key())) << "body bit " << bit;
  }
  for (std::size_t bit = 0; bit < sig.size() * 8; ++bit) {
    Signature s = sig;
    s[bit / 8] ^= static_cast<std::uint8_t>(1 << (bit % 8));
    ASSERT_FALSE(verify(SignKind::claim, as_bytes(body), s, key.public_key())) << "sig bit " << bit;
  }
  for (std::size_t bit = 0; bit < public_key_size * 8; ++bit) {
    PublicKey pk = key.public_key();
    pk.bytes[bit / 8] ^= static_cast<std::uint8_t>(1 << (bit % 8));
    ASSERT_FALSE(verify(SignKind::claim, as_bytes(body), sig, pk)) << "key bit " << bit;
  }
}

TEST(Crypto, TruncatedOrExtendedSignatureIsRejectedWithReason) {
  auto key = SecretKey::generate();
  std::string body = "x";
  Signature sig = sign(SignKind::retraction, as_bytes(body), key);
  auto r = verify(SignKind::retraction, as_bytes(body), Bytes(sig.data(), 63), key.public_key());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "bad_signature");
  EXPECT_NE(r.error().message.find("63 bytes"), std::string::npos) << r.error().message;
}

TEST(Crypto, EventIdIsBlake2b256OfTheBytes) {
  // BLAKE2b-256("") from the BLAKE2 reference test vectors.
  EXPECT_EQ(to_hex(event_id({})),
            "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
  std::string a = "abc";
  EXPECT_EQ(to_hex(event_id(as_bytes(a))),
            "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
}

TEST(Crypto, PublicKeyFingerprintIsStableAndShort) {
  auto key = SecretKey::from_seed(from_hex(kVectors[0].secret));
  ASSERT_TRUE(key);
  std::string fp = key->public_key().fingerprint();
  EXPECT_EQ(fp.rfind("ed25519:", 0), 0u);
  EXPECT_EQ(fp.size(), 8u + 32u);
  EXPECT_EQ(fp, key->public_key().fingerprint());
  EXPECT_FALSE(PublicKey::from_bytes(Bytes(key->public_key().bytes.data(), 31)));
}

}  // namespace
}  // namespace meshd::proto
