#include "proto/keys.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "tests/unit/proto/test_util.hpp"

namespace meshd::proto {
namespace {

namespace fs = std::filesystem;

unsigned mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0);
  return st.st_mode & 07777;
}

TEST(Keys, SecretKeyFileIs0600AndRoundTrips) {
  testing::TempDir dir;
  auto key = SecretKey::generate();
  ASSERT_TRUE(write_secret_key(dir / "node.key", key));
  ASSERT_TRUE(write_public_key(dir / "node.pub", key.public_key()));
  EXPECT_EQ(mode_of(dir / "node.key"), 0600u);
  EXPECT_EQ(mode_of(dir / "node.pub"), 0644u);
  auto loaded = load_secret_key(dir / "node.key");
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(loaded->public_key(), key.public_key());
  auto pub = load_public_key(dir / "node.pub");
  ASSERT_TRUE(pub);
  EXPECT_EQ(*pub, key.public_key());
  // No temp files left behind.
  int files = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 2);
}

TEST(Keys, GroupOrWorldReadableSecretKeyIsRefused) {
  testing::TempDir dir;
  auto key = SecretKey::generate();
  ASSERT_TRUE(write_secret_key(dir / "node.key", key));
  for (unsigned mode : {0640u, 0604u, 0644u, 0660u, 0610u}) {
    ASSERT_EQ(::chmod((dir / "node.key").c_str(), mode), 0);
    auto r = load_secret_key(dir / "node.key");
    ASSERT_FALSE(r) << std::oct << mode;
    EXPECT_EQ(r.error().code, "key_permissions");
    EXPECT_NE(r.error().message.find("chmod 600"), std::string::npos) << r.error().message;
  }
  ASSERT_EQ(::chmod((dir / "node.key").c_str(), 0644), 0);
  auto r = load_secret_key(dir / "node.key");
  EXPECT_NE(r.error().message.find("readable by group/others (mode 0644)"), std::string::npos)
      << r.error().message;
  ASSERT_EQ(::chmod((dir / "node.key").c_str(), 0400), 0);
  EXPECT_TRUE(load_secret_key(dir / "node.key"));
}

TEST(Keys, RefusesToOverwriteUnlessAsked) {
  testing::TempDir dir;
  auto a = SecretKey::generate();
  auto b = SecretKey::generate();
  ASSERT_TRUE(write_secret_key(dir / "k", a));
  auto r = write_secret_key(dir / "k", b);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "file_exists");
  EXPECT_EQ(load_secret_key(dir / "k")->public_key(), a.public_key());
  ASSERT_TRUE(write_secret_key(dir / "k", b, /*overwrite=*/true));
  EXPECT_EQ(load_secret_key(dir / "k")->public_key(), b.public_key());
  EXPECT_EQ(mode_of(dir / "k"), 0600u);
}

TEST(Keys, MissingAndMalformedFilesHaveClearErrors) {
  testing::TempDir dir;
  EXPECT_EQ(load_secret_key(dir / "nope").error().code, "file_missing");
  EXPECT_EQ(load_public_key(dir / "nope").error().code, "file_missing");

  auto key = SecretKey::generate();
  ASSERT_TRUE(write_public_key(dir / "node.pub", key.public_key()));
  ASSERT_TRUE(write_secret_key(dir / "node.key", key));
  // Swapped files say what they are.
  ASSERT_EQ(::chmod((dir / "node.pub").c_str(), 0600), 0);
  auto r1 = load_secret_key(dir / "node.pub");
  EXPECT_EQ(r1.error().code, "key_format");
  EXPECT_NE(r1.error().message.find("public key"), std::string::npos);
  auto r2 = load_public_key(dir / "node.key");
  EXPECT_EQ(r2.error().code, "key_format");
  EXPECT_NE(r2.error().message.find("secret key"), std::string::npos);

  ASSERT_TRUE(
      write_file_atomic(dir / "bad64", "meshd-ed25519-public-v1 !!!notbase64\n", 0644, false));
  EXPECT_EQ(load_public_key(dir / "bad64").error().code, "key_format");
  ASSERT_TRUE(write_file_atomic(dir / "short", "meshd-ed25519-secret-v1 AAAA\n", 0600, false));
  auto r3 = load_secret_key(dir / "short");
  EXPECT_EQ(r3.error().code, "key_format");
  EXPECT_NE(r3.error().message.find("3 key bytes"), std::string::npos) << r3.error().message;
}

TEST(Keys, Base64RoundTrip) {
  std::string data = std::string("\x00\x01\xfe\xff", 4) + "meshd";
  auto enc = base64_encode(as_bytes(data));
  EXPECT_EQ(*base64_decode(enc), data);
  EXPECT_FALSE(base64_decode(enc + "*"));
}

}  // namespace
}  // namespace meshd::proto
