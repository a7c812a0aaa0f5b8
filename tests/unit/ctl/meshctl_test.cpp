// End to end: runs the built meshctl binary (MESHCTL_PATH) the way an operator would.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "proto/cert.hpp"
#include "proto/keys.hpp"
#include "tests/unit/proto/test_util.hpp"

namespace {

namespace fs = std::filesystem;
using meshd::proto::testing::TempDir;

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs meshctl with `args` (no shell), capturing stdout and stderr into files in `dir`.
RunResult meshctl(const TempDir& dir, const std::vector<std::string>& args) {
  fs::path out = dir / "stdout.txt";
  fs::path err = dir / "stderr.txt";
  pid_t pid = ::fork();
  if (pid == 0) {
    FILE* o = std::freopen(out.c_str(), "w", stdout);
    FILE* e = std::freopen(err.c_str(), "w", stderr);
    if (!o || !e) ::_exit(127);
    std::vector<char*> argv;
    std::string prog = MESHCTL_PATH;
    argv.push_back(prog.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(prog.c_str(), argv.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

// The contract for every failure: exactly one stderr line starting "meshctl: ".
void expect_one_error_line(const RunResult& r, const std::string& must_contain) {
  EXPECT_NE(r.exit_code, 0);
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.rfind("meshctl: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.back(), '\n');
  EXPECT_NE(r.err.find(must_contain), std::string::npos)
      << "expected '" << must_contain << "' in: " << r.err;
}

unsigned mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

class Meshctl : public ::testing::Test {
 protected:
  TempDir dir;
  std::string ca_dir() const { return (dir / "ca").string(); }
  std::string node_dir() const { return (dir / "node").string(); }

  void make_ca_and_key() {
    auto r = meshctl(dir, {"ca", "init", "--out", ca_dir()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = meshctl(dir, {"keys", "gen", "--out", node_dir()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  RunResult sign(const std::string& out, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "ca",     "sign",   "--ca",     ca_dir(), "--pub", node_dir() + "/node.pub",
        "--name", "node-a", "--domain", "zone-1", "--out", out};
    args.insert(args.end(), extra.begin(), extra.end());
    return meshctl(dir, args);
  }
};

TEST_F(Meshctl, CaInitKeysGenSignAndShowEndToEnd) {
  make_ca_and_key();
  EXPECT_EQ(mode_of(dir / "ca/ca.key"), 0600u);
  EXPECT_TRUE(fs::exists(dir / "ca/ca.pub"));
  EXPECT_EQ(mode_of(dir / "node/node.key"), 0600u);
  EXPECT_TRUE(fs::exists(dir / "node/node.pub"));

  std::string cert = (dir / "node.cert").string();
  auto r = sign(cert, {"--role", "node", "--days", "30"});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  r = meshctl(dir, {"cert", "show", cert, "--json", "--ca", ca_dir()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["node_id"], "node-a");
  EXPECT_EQ(j["failure_domain"], "zone-1");
  EXPECT_EQ(j["role"], "node");
  EXPECT_EQ(j["expired"], false);
  EXPECT_EQ(j["signature_valid"], true);
  auto pub = meshd::proto::load_public_key(dir / "node/node.pub");
  ASSERT_TRUE(pub);
  EXPECT_EQ(j["fingerprint"], pub->fingerprint());
  const std::int64_t days30 = 30LL * 86'400'000;
  EXPECT_EQ(j["not_after_ms"].get<std::int64_t>() - j["not_before_ms"].get<std::int64_t>(), days30);
  EXPECT_GT(j["serial"].get<std::uint64_t>(), 0u);

  // The file meshctl wrote verifies with the library the daemon uses.
  auto sc = meshd::proto::load_cert_file(cert);
  auto ca_pub = meshd::proto::load_public_key(dir / "ca/ca.pub");
  ASSERT_TRUE(sc && ca_pub);
  EXPECT_TRUE(meshd::proto::verify_cert(*sc, *ca_pub, j["not_before_ms"].get<std::int64_t>() + 1,
                                        meshd::v1::ROLE_NODE));

  r = meshctl(dir, {"cert", "show", cert});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("node-a"), std::string::npos);
  EXPECT_NE(r.out.find("zone-1"), std::string::npos);
  EXPECT_NE(r.out.find(pub->fingerprint()), std::string::npos);
  EXPECT_NE(r.out.find("status       valid"), std::string::npos) << r.out;
}

TEST_F(Meshctl, OperatorRoleCert) {
  make_ca_and_key();
  auto r = sign((dir / "op.cert").string(), {"--role", "operator"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = meshctl(dir, {"cert", "show", (dir / "op.cert").string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["role"], "operator");
}

TEST_F(Meshctl, CaInitRefusesToOverwriteWithoutForce) {
  make_ca_and_key();
  auto before = slurp(dir / "ca/ca.key");
  auto r = meshctl(dir, {"ca", "init", "--out", ca_dir()});
  expect_one_error_line(r, "already exists");
  EXPECT_EQ(slurp(dir / "ca/ca.key"), before);
  r = meshctl(dir, {"ca", "init", "--out", ca_dir(), "--force"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(slurp(dir / "ca/ca.key"), before);
  EXPECT_EQ(mode_of(dir / "ca/ca.key"), 0600u);
}

TEST_F(Meshctl, MissingFileIsOneClearLine) {
  make_ca_and_key();
  auto r = meshctl(dir, {"cert", "show", (dir / "nope.cert").string()});
  expect_one_error_line(r, "nope.cert does not exist");
  r = meshctl(dir,
              {"ca", "sign", "--ca", (dir / "noca").string(), "--pub", node_dir() + "/node.pub",
               "--name", "n", "--domain", "d", "--out", (dir / "x.cert").string()});
  expect_one_error_line(r, "ca.key does not exist");
}

TEST_F(Meshctl, GroupReadableCaKeyIsRefused) {
  make_ca_and_key();
  ASSERT_EQ(::chmod((dir / "ca/ca.key").c_str(), 0644), 0);
  auto r = sign((dir / "node.cert").string());
  expect_one_error_line(r, "readable by group/others (mode 0644); chmod 600");
  EXPECT_FALSE(fs::exists(dir / "node.cert"));
}

TEST_F(Meshctl, ExpiredCertFailsShow) {
  make_ca_and_key();
  std::string cert = (dir / "old.cert").string();
  auto r = sign(cert, {"--days", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ::usleep(5000);  // --days 0 expires at the signing millisecond
  r = meshctl(dir, {"cert", "show", cert, "--json"});
  expect_one_error_line(r, "expired");
  EXPECT_EQ(nlohmann::json::parse(r.out)["expired"], true);
  r = meshctl(dir, {"cert", "show", cert, "--ca", ca_dir()});
  expect_one_error_line(r, "expired");
}

TEST_F(Meshctl, CertFromAnotherCaFailsVerification) {
  make_ca_and_key();
  std::string cert = (dir / "node.cert").string();
  ASSERT_EQ(sign(cert).exit_code, 0);
  auto r = meshctl(dir, {"ca", "init", "--out", (dir / "other").string()});
  ASSERT_EQ(r.exit_code, 0);
  r = meshctl(dir, {"cert", "show", cert, "--ca", (dir / "other").string()});
  expect_one_error_line(r, "not signed by the CA");
}

TEST_F(Meshctl, WrongKeyFilesAreRejected) {
  make_ca_and_key();
  // A secret key where a public key belongs.
  auto r = meshctl(dir, {"ca", "sign", "--ca", ca_dir(), "--pub", node_dir() + "/node.key",
                         "--name", "node-a", "--domain", "z", "--out", (dir / "c").string()});
  expect_one_error_line(r, "secret key file, not a public key");
  // A CA directory whose ca.pub belongs to another CA.
  ASSERT_EQ(meshctl(dir, {"ca", "init", "--out", (dir / "other").string()}).exit_code, 0);
  fs::copy_file(dir / "other/ca.pub", dir / "ca/ca.pub", fs::copy_options::overwrite_existing);
  r = sign((dir / "c").string());
  expect_one_error_line(r, "does not match");
  // A garbage cert file.
  std::ofstream(dir / "junk.cert") << "hello\n";
  r = meshctl(dir, {"cert", "show", (dir / "junk.cert").string()});
  expect_one_error_line(r, "not a meshd certificate");
}

TEST_F(Meshctl, UsageErrorsAreOneLineToo) {
  auto r = meshctl(dir, {"ca", "sign", "--ca", ca_dir()});
  expect_one_error_line(r, "required");
  EXPECT_EQ(r.exit_code, 2);
  r = meshctl(dir, {"ca", "sign", "--ca", ca_dir(), "--pub", "p", "--name", "n", "--domain", "d",
                    "--role", "admin", "--out", "o"});
  expect_one_error_line(r, "admin");
  r = meshctl(dir, {"keys", "gen", "--out", node_dir(), "--name", "../escape"});
  expect_one_error_line(r, "--name '../escape' must be");
  EXPECT_FALSE(fs::exists(dir / "escape.key"));
  r = meshctl(dir, {"keys", "gen", "--out", node_dir(), "--name", "alice"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(mode_of(dir / "node/alice.key"), 0600u);
  r = meshctl(dir, {"--socket", "/tmp/x.sock", "keys", "gen", "--out", node_dir()});
  EXPECT_EQ(r.exit_code, 0) << r.err;  // --socket is accepted globally
}

}  // namespace
