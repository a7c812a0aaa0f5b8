// The metrics listener of a real in-process daemon (dryrun, no peers): /metrics through
// promtool, the /ui page and its JSON API, the token rules, and the HTTP helpers.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdio>
#include <functional>
#include <regex>

#include "meshd/app/http_server.hpp"
#include "meshd/app/ui_api.hpp"
#include "meshd/app/ui_assets.hpp"
#include "tests/unit/app/daemon_harness.hpp"

namespace meshd::test {
namespace {

std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

struct HttpReply {
  int code = 0;
  std::string headers;
  std::string body;
};

// One request over a fresh connection; the server closes it after the answer.
HttpReply http(std::uint16_t port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  HttpReply r;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return r;
  }
  (void)!::write(fd, request.data(), request.size());
  std::string raw;
  char buf[8192];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
    raw.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  auto end = raw.find("\r\n\r\n");
  if (raw.size() < 12 || end == std::string::npos) return r;
  r.code = std::stoi(raw.substr(9, 3));
  r.headers = raw.substr(0, end);
  r.body = raw.substr(end + 4);
  return r;
}

HttpReply get(std::uint16_t port, const std::string& path, const std::string& extra = "") {
  return http(port, "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + extra + "\r\n");
}

// A daemon with the metrics listener on a loopback port and a /ui token file.
class UiDaemon {
 public:
  UiDaemon(const TempDir& dir, const Identities& ids, const std::string& token_file,
           const std::string& enforcement = "  backend: dryrun\n",
           const std::function<void(app::AppConfig&)>& tweak = {})
      : port_(free_port()), socket_(dir / "ctl.sock") {
    const std::string config_path = dir / "meshd.yaml";
    std::ofstream(config_path) << "node:\n"
                               << "  name: node-1\n"
                               << "  key: " << ids.node_key() << "\n"
                               << "  cert: " << ids.node_cert() << "\n"
                               << "  ca: " << ids.ca_pub() << "\n"
                               << "  data_dir: " << dir.file("data") << "\n"
                               << "mesh:\n  listen: \"\"\n  peers: []\n"
                               << "control:\n  socket: " << socket_ << "\n"
                               << "metrics:\n  listen: \"127.0.0.1:" << port_ << "\"\n"
                               << "  ui_token_file: \"" << token_file << "\"\n"
                               << "enforcement:\n"
                               << enforcement << "sensor:\n  enabled: false\n";
    auto config = app::load_config_file(config_path);
    if (!config) throw std::runtime_error(config.error().message);
    if (tweak) tweak(*config);
    auto d = app::Daemon::create(std::move(*config), config_path);
    if (!d) {
      error_ = d.error();
      return;
    }
    daemon_ = std::move(*d);
    thread_ = std::thread([this] { daemon_->run(); });
  }
  ~UiDaemon() {
    if (thread_.joinable()) {
      ::kill(::getpid(), SIGTERM);
      thread_.join();
    }
  }
  std::uint16_t port() const { return port_; }
  const std::optional<Error>& error() const { return error_; }
  CtlRun ctl(std::vector<std::string> args) const {
    args.insert(args.begin(), {"--socket", socket_});
    return meshctl(std::move(args));
  }

 private:
  std::uint16_t port_;
  std::string socket_;
  std::optional<Error> error_;
  std::unique_ptr<app::Daemon> daemon_;
  std::thread thread_;
};

class UiApi : public ::testing::Test {
 protected:
  UiApi() : ids_(dir_), token_file_(write_token()), daemon_(dir_, ids_, token_file_) {
    if (daemon_.error()) throw std::runtime_error(daemon_.error()->message);
  }
  std::string write_token() {
    std::ofstream(dir_ / "ui.token") << kToken << "\n";
    return dir_ / "ui.token";
  }
  json get_json(const std::string& path) {
    auto r = get(daemon_.port(), path);
    EXPECT_EQ(r.code, 200) << path << ": " << r.body;
    EXPECT_NE(r.headers.find("Content-Type: application/json"), std::string::npos);
    json j = json::parse(r.body, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.body;
    return j;
  }
  void block_add(const std::string& cidr) {
    auto r = daemon_.ctl({"block", "add", cidr, "--confidence", "0.9", "--reason", "ui test"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  static constexpr const char* kToken = "s3cret-token-0123456789";
  TempDir dir_;
  Identities ids_;
  std::string token_file_;
  UiDaemon daemon_;
};

#ifdef PROMTOOL_PATH
TEST_F(UiApi, LiveMetricsPassPromtoolCheckMetrics) {
  block_add("203.0.113.7");
  auto r = get(daemon_.port(), "/metrics");
  ASSERT_EQ(r.code, 200);
  std::string path = dir_ / "metrics.txt";
  std::ofstream(path) << r.body;
  std::string cmd = std::string(PROMTOOL_PATH) + " check metrics < " + path + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  EXPECT_EQ(::pclose(p), 0) << out;
  EXPECT_EQ(out, "") << "promtool has remarks";
}
#endif

TEST_F(UiApi, MetricsHaveTheFleetViewFamilies) {
  block_add("203.0.113.7");
  const auto body = get(daemon_.port(), "/metrics").body;
  for (const char* want : {
           "# TYPE meshd_claim_propagation_seconds histogram\n",
           "meshd_claim_propagation_seconds_bucket{path=\"push\",le=\"+Inf\"} 0\n",
           "meshd_claim_propagation_seconds_count{path=\"sync\"} 0\n",
           "meshd_block_decision_total{verdict=\"enforce\"} 1\n",
           "meshd_trust{origin=\"node-1\",domain=\"zone-a\"} ",  // the ledger holds only itself
           "# TYPE meshd_peer_score gauge\n",
           "meshd_enforcer_drops_total{program=\"dryrun\"} 0\n",
           "meshd_sensor_events_lost_total 0\n",
           "process_cpu_seconds_total ",
           "process_resident_memory_bytes ",
       })
    EXPECT_NE(body.find(want), std::string::npos) << want;
  // Bounded: one trust series per ledger origin (only this node here), no peer series
  // without peers.
  std::size_t trust_series = 0;
  for (auto at = body.find("\nmeshd_trust{"); at != std::string::npos;
       at = body.find("\nmeshd_trust{", at + 1))
    ++trust_series;
  EXPECT_EQ(trust_series, 1u);
  EXPECT_EQ(body.find("meshd_peer_score{"), std::string::npos);
}

TEST_F(UiApi, PageAndAssetsAreEmbeddedAndSelfContained) {
  auto page = get(daemon_.port(), "/ui");
  ASSERT_EQ(page.code, 200);
  EXPECT_NE(page.headers.find("Content-Type: text/html"), std::string::npos);
  EXPECT_NE(page.headers.find("Content-Security-Policy: default-src 'none'; script-src 'self'"),
            std::string::npos);
  EXPECT_NE(page.body.find("<script src=\"/ui/app.js\">"), std::string::npos);
  EXPECT_EQ(get(daemon_.port(), "/ui/").body, page.body);
  std::size_t total = 0;
  for (const auto& a : app::ui_assets()) {
    auto r = get(daemon_.port(), "/ui/" + std::string(a.name));
    EXPECT_EQ(r.code, 200) << a.name;
    EXPECT_EQ(r.body, a.body) << a.name;
    total += a.body.size();
    // Nothing from the network: no absolute URLs in src/href/url()/import/fetch.
    std::regex external(
        R"((src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import|fetch\(\s*["'`]https?:)");
    EXPECT_FALSE(std::regex_search(std::string(a.body), external)) << a.name;
  }
  EXPECT_EQ(app::ui_assets().size(), 3u);
  EXPECT_LT(total, 64u * 1024) << "the page should stay small";
}

TEST_F(UiApi, StateShowsNodeBlocksLedgerAndCounters) {
  auto before = get_json("/ui/api/state");
  EXPECT_EQ(before["node"]["id"], "node-1");
  EXPECT_EQ(before["node"]["domain"], "zone-a");
  EXPECT_EQ(before["node"]["backend"], "dryrun");
  EXPECT_TRUE(before["blocks"].empty());
  block_add("203.0.113.7");
  auto s = get_json("/ui/api/state");
  ASSERT_EQ(s["blocks"].size(), 1u);
  const auto& b = s["blocks"][0];
  EXPECT_EQ(b["prefix"], "203.0.113.7");
  EXPECT_EQ(b["direction"], "both");
  EXPECT_GT(b["ttl_ms"].get<std::int64_t>(), 0);
  EXPECT_GT(b["score"].get<double>(), b["threshold"].get<double>());
  ASSERT_EQ(b["origins"].size(), 1u);
  EXPECT_EQ(b["origins"][0]["origin"], "node-1");
  EXPECT_EQ(s["blocks_total"], 1);
  ASSERT_EQ(s["ledger"].size(), 1u);
  EXPECT_EQ(s["ledger"][0]["origin"], "node-1");
  EXPECT_EQ(s["ledger"][0]["self"], true);
  EXPECT_EQ(s["counters"]["claims_signed"], 1);
  EXPECT_EQ(s["counters"]["blocks_active"], 1);
  EXPECT_EQ(s["decisions"]["enforce"], 1);
  EXPECT_EQ(s["propagation"]["push"]["buckets"].size(), s["propagation"]["bounds"].size() + 1);
}

TEST_F(UiApi, ExplainIsTheControlApisExplanation) {
  block_add("203.0.113.7");
  auto x = get_json("/ui/api/explain?ip=203.0.113.7");
  auto ctl = daemon_.ctl({"explain", "203.0.113.7", "--json"});
  ASSERT_EQ(ctl.exit_code, 0);
  auto want = json::parse(ctl.out);
  ASSERT_EQ(x["targets"].size(), 1u);
  EXPECT_EQ(x["targets"][0]["verdict"], "enforce");
  EXPECT_EQ(x["targets"][0]["claims"][0]["origin"], "node-1");
  EXPECT_EQ(x["targets"][0]["claims"], want["targets"][0]["claims"]);
  // Percent-encoded CIDR, and errors as JSON with a reason.
  EXPECT_EQ(get_json("/ui/api/explain?ip=203.0.113.0%2F24")["query"], "203.0.113.0/24");
  auto bad = get(daemon_.port(), "/ui/api/explain?ip=not-an-ip");
  EXPECT_EQ(bad.code, 400);
  EXPECT_EQ(json::parse(bad.body)["error_code"], "bad_cidr");
  EXPECT_EQ(get(daemon_.port(), "/ui/api/explain").code, 400);
}

TEST_F(UiApi, EventsCursorReturnsOnlyNewerEvents) {
  auto first = get_json("/ui/api/events?after=0");
  ASSERT_FALSE(first["events"].empty());
  EXPECT_EQ(first["events"][0]["e"]["event"], "started");
  const auto next = first["next"].get<std::uint64_t>();
  EXPECT_TRUE(get_json("/ui/api/events?after=" + std::to_string(next))["events"].empty());
  block_add("203.0.113.7");
  auto more = get_json("/ui/api/events?after=" + std::to_string(next));
  std::set<std::string> kinds;
  for (const auto& e : more["events"]) {
    EXPECT_GT(e["id"].get<std::uint64_t>(), next);
    kinds.insert(e["e"]["event"].get<std::string>());
  }
  EXPECT_TRUE(kinds.contains("claim_signed"));
  EXPECT_TRUE(kinds.contains("block_enforce"));
  EXPECT_EQ(get(daemon_.port(), "/ui/api/events?after=-1").code, 400);
  EXPECT_EQ(get(daemon_.port(), "/ui/api/events?after=12x").code, 400);
}

TEST_F(UiApi, ReadOnlyAndStrictAboutMethodsAndPaths) {
  block_add("203.0.113.7");
  auto before = get_json("/ui/api/state");
  for (const char* m : {"POST", "PUT", "DELETE"})
    EXPECT_EQ(http(daemon_.port(), std::string(m) + " /ui/api/state HTTP/1.1\r\n\r\n").code, 405);
  EXPECT_EQ(get(daemon_.port(), "/ui/api/nope").code, 404);
  EXPECT_EQ(get(daemon_.port(), "/ui/../metrics").code, 404);
  for (int i = 0; i < 5; ++i) {
    get(daemon_.port(), "/ui/api/state");
    get(daemon_.port(), "/ui/api/explain?ip=203.0.113.7");
  }
  auto after = get_json("/ui/api/state");
  EXPECT_EQ(after["counters"], before["counters"]);
  EXPECT_EQ(after["decisions"], before["decisions"]);
  EXPECT_EQ(after["blocks"][0]["expires_at"], before["blocks"][0]["expires_at"]);
  // HEAD: headers only.
  auto head = http(daemon_.port(), "HEAD /ui HTTP/1.1\r\n\r\n");
  EXPECT_EQ(head.code, 200);
  EXPECT_TRUE(head.body.empty());
}

TEST_F(UiApi, LoopbackNeedsNoToken) {
  // Requests arrive on 127.0.0.1 here: the token is not needed, and a wrong one is ignored.
  EXPECT_EQ(get(daemon_.port(), "/ui").code, 200);
  EXPECT_EQ(get(daemon_.port(), "/ui", "Authorization: Bearer wrong\r\n").code, 200);
}

TEST(UiToken, FileRules) {
  TempDir dir;
  EXPECT_FALSE(app::load_ui_token(dir / "missing"));
  std::ofstream(dir / "short") << "abc123\n";
  auto s = app::load_ui_token(dir / "short");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, "bad_config");
  EXPECT_NE(s.error().message.find("at least 16"), std::string::npos);
  EXPECT_EQ(s.error().message.find("abc123"), std::string::npos) << "the token leaked";
  std::ofstream(dir / "spaces") << "0123456789 abcdefghij\n";
  auto sp = app::load_ui_token(dir / "spaces");
  ASSERT_FALSE(sp);
  EXPECT_EQ(sp.error().message.find("abcdefghij"), std::string::npos);
  std::ofstream(dir / "ok") << "  0123456789abcdefXYZ\n\n";
  auto ok = app::load_ui_token(dir / "ok");
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, "0123456789abcdefXYZ");
}

TEST(UiToken, DaemonRefusesToStartWithABadTokenFile) {
  TempDir dir;
  Identities ids(dir);
  std::ofstream(dir / "ui.token") << "short\n";
  UiDaemon d(dir, ids, dir / "ui.token");
  ASSERT_TRUE(d.error());
  EXPECT_EQ(d.error()->code, "bad_config");
  EXPECT_NE(d.error()->message.find("metrics.ui_token_file"), std::string::npos);
}

TEST_F(UiApi, HealthzIsReadyWithAnExplicitDryrunBackend) {
  auto r = get(daemon_.port(), "/healthz");
  EXPECT_EQ(r.code, 200) << r.body;
  EXPECT_EQ(r.body, "ok\n");
}

// `backend: auto` that finds no backend able to enforce runs (blocks are logged), but the node
// must not look ready: the kubelet and the operator see why on /healthz and in `meshctl status`.
TEST(Healthz, AutoBackendThatCannotEnforceIsNotReady) {
  TempDir dir;
  Identities ids(dir);
  std::ofstream(dir / "ui.token") << "s3cret-token-0123456789"
                                  << "\n";
  // bpf fails: the pin path is not on bpffs. nftables fails: a table name the kernel refuses
  // (set after validation, which would reject it), so no table is made even as root.
  UiDaemon d(dir, ids, dir / "ui.token",
             "  backend: auto\n  pin_path: " + dir.file("not-bpffs") + "\n",
             [](app::AppConfig& c) { c.enforcement.nft_table = std::string(300, 't'); });
  ASSERT_FALSE(d.error()) << d.error()->message;
  HttpReply r;
  for (int i = 0; i < 100 && r.code == 0; ++i) {  // the listener runs once run() has begun
    r = get(d.port(), "/healthz");
    if (r.code == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(r.code, 503) << r.body;
  EXPECT_NE(r.body.find("not ready: enforcement.backend auto found no backend that enforces"),
            std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find("bpf: "), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("nftables: nftables table name must be 1..255"), std::string::npos)
      << r.body;
  auto status = d.ctl({"status", "--json"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_EQ(status.parsed()["backend"], "dryrun");
  EXPECT_NE(status.parsed()["enforcement"].get<std::string>().find("auto found no backend"),
            std::string::npos);
}

TEST(HttpHelpers, AuthorizationMatches) {
  const std::string token = "0123456789abcdef";
  EXPECT_TRUE(app::authorization_matches("Bearer 0123456789abcdef", token));
  EXPECT_TRUE(app::authorization_matches("bearer   0123456789abcdef", token));
  EXPECT_FALSE(app::authorization_matches("Bearer 0123456789abcdeg", token));
  EXPECT_FALSE(app::authorization_matches("Bearer 0123456789abcde", token));
  EXPECT_FALSE(app::authorization_matches("Bearer", token));
  EXPECT_FALSE(app::authorization_matches("", token));
  // Basic: any user, the token as password ("ops:0123456789abcdef").
  EXPECT_TRUE(app::authorization_matches("Basic b3BzOjAxMjM0NTY3ODlhYmNkZWY=", token));
  EXPECT_FALSE(app::authorization_matches("Basic b3BzOndyb25n", token));  // ops:wrong
  EXPECT_FALSE(app::authorization_matches("Basic !!!", token));
  // No token configured: nothing matches, not even an empty bearer.
  EXPECT_FALSE(app::authorization_matches("Bearer ", ""));
}

TEST(HttpHelpers, QueryParam) {
  EXPECT_EQ(app::query_param("ip=10.0.0.1", "ip"), "10.0.0.1");
  EXPECT_EQ(app::query_param("a=1&ip=10.0.0.0%2F8&b=2", "ip"), "10.0.0.0/8");
  EXPECT_EQ(app::query_param("ip=a+b", "ip"), "a b");
  EXPECT_EQ(app::query_param("ip=", "ip"), "");
  EXPECT_EQ(app::query_param("ipx=1", "ip"), std::nullopt);
  EXPECT_EQ(app::query_param("ip=%2", "ip"), std::nullopt);
  EXPECT_EQ(app::query_param("ip=%zz", "ip"), std::nullopt);
  EXPECT_EQ(app::query_param("", "ip"), std::nullopt);
}

}  // namespace
}  // namespace meshd::test
