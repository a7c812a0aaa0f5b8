// sensor.falco_listen end to end: Falco alerts POSTed over real HTTP to a real daemon become
// signed claims (blocks, explain, events), alerts without a destination are counted and not
// claimed, bad bodies get a 4xx and a counter, and the daemon keeps serving.
#include "meshd/common/asio.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "tests/unit/app/daemon_harness.hpp"

namespace meshd::test {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;

// Falco's http_output / falcosidekick webhook body for the "Outbound Connection to C2 Servers"
// rule (falco_rules.yaml), as documented: rule, priority, output, time, output_fields.
std::string c2_alert(const std::string& server_ip) {
  json j = {
      {"uuid", "5b0c6f7e-2a1d-4c55-8f0e-9d1b0a7c3e21"},
      {"output", "12:00:00.000000000: Critical Outbound connection to C2 server (command=nc " +
                     server_ip + " 4444 connection=10.244.1.17:43122->" + server_ip +
                     ":4444 user=root container_id=3f2a1b4c5d6e image=alpine)"},
      {"priority", "Critical"},
      {"rule", "Outbound Connection to C2 Servers"},
      {"source", "syscall"},
      {"hostname", "node-1"},
      {"tags", {"network", "mitre_command_and_control"}},
      {"output_fields",
       {{"container.id", "3f2a1b4c5d6e"},
        {"evt.type", "connect"},
        {"fd.cip", "10.244.1.17"},
        {"fd.cport", 43122},
        {"fd.name", "10.244.1.17:43122->" + server_ip + ":4444"},
        {"fd.sip", server_ip},
        {"fd.rip", server_ip},
        {"fd.sport", 4444},
        {"k8s.ns.name", "shop"},
        {"k8s.pod.name", "web-1"},
        {"proc.name", "nc"},
        {"proc.pid", 31337}}}};
  return j.dump();
}

// A Falco alert about a process, not a connection: no address to block.
constexpr const char* kTerminalShell = R"json({
  "output": "Notice A shell was spawned in a container with an attached terminal (user=root k8s.ns=default k8s.pod=web-1 container=5a9a7b3c2d1e shell=sh)",
  "priority": "Notice",
  "rule": "Terminal shell in container",
  "time": "2024-03-01T12:00:00.123456789Z",
  "source": "syscall",
  "output_fields": {"container.id": "5a9a7b3c2d1e", "k8s.pod.name": "web-1", "proc.name": "sh"}
})json";

struct HttpReply {
  unsigned status = 0;
  json body;
  std::string www_authenticate;
};

constexpr const char* kSecret = "s3cr3t-shared-with-falcosidekick";

// `authorization`: the Authorization header, or none when empty.
HttpReply http_request(const std::string& host_port, http::verb verb, const std::string& body,
                       const std::string& authorization = std::string("Bearer ") + kSecret) {
  const auto colon = host_port.rfind(':');
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  socket.connect({asio::ip::make_address(host_port.substr(0, colon)),
                  static_cast<std::uint16_t>(std::stoi(host_port.substr(colon + 1)))});
  http::request<http::string_body> req{verb, "/", 11};
  req.set(http::field::host, host_port);
  req.set(http::field::content_type, "application/json");
  if (!authorization.empty()) req.set(http::field::authorization, authorization);
  req.keep_alive(false);
  req.body() = body;
  req.prepare_payload();
  http::write(socket, req);
  boost::beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(socket, buffer, res);
  return {res.result_int(), json::parse(res.body(), nullptr, false),
          std::string(res[http::field::www_authenticate])};
}

// The value of one sample line of the Prometheus text, or -1 if absent.
double metric(const std::string& text, const std::string& sample) {
  auto at = text.find("\n" + sample + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + sample.size() + 2));
}

class FalcoAlerts : public ::testing::Test {
 protected:
  FalcoAlerts()
      : ids_(dir_),
        secret_file_(write_secret(dir_)),
        daemon_(dir_, ids_,
                "  falco_listen: 127.0.0.1:0\n  falco_secret_file: " + secret_file_ + "\n") {
    // The YAML above continues the `sensor:` map of the harness's base config.
    address_ = daemon_.ctl_json({"status"})["falco_listen"];
  }
  static std::string write_secret(const TempDir& dir) {
    std::ofstream(dir / "falco.secret") << kSecret << "\n";
    return dir / "falco.secret";
  }
  TempDir dir_;
  Identities ids_;
  std::string secret_file_;
  DaemonUnderTest daemon_;
  std::string address_;
};

TEST_F(FalcoAlerts, OutboundC2AlertBecomesAnEnforcedClaim) {
  ASSERT_TRUE(address_.starts_with("127.0.0.1:")) << address_;
  ASSERT_NE(address_, "127.0.0.1:0");

  auto r = http_request(address_, http::verb::post, c2_alert("203.0.113.77"));
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.body["mapped"], true);
  EXPECT_EQ(r.body["prefix"], "203.0.113.77");
  EXPECT_EQ(r.body["direction"], "egress");

  // The handler ran before the response was written: the claim is there now.
  json arr = daemon_.ctl_json({"blocks"});
  auto b = find_prefix(arr, "203.0.113.77");
  ASSERT_TRUE(b) << arr.dump();
  EXPECT_EQ((*b)["origins"], json::array({"node-1"}));
  EXPECT_EQ((*b)["enforced"], true);
  EXPECT_EQ((*b)["direction"], "egress");

  json x = daemon_.ctl_json({"explain", "203.0.113.77"});
  const json& claim = x["targets"][0]["claims"][0];
  EXPECT_EQ(claim["detector"], "falco");
  EXPECT_EQ(claim["severity"], "critical");

  // The same alert again (Falco fires on every connect): suppressed, not signed twice.
  r = http_request(address_, http::verb::post, c2_alert("203.0.113.77"));
  EXPECT_EQ(r.status, 200u);
  std::size_t signed_claims = 0;
  auto evs = daemon_.ctl({"events", "--json", "--limit", "1000"});
  std::istringstream lines(evs.out);
  for (std::string line; std::getline(lines, line);) {
    json e = json::parse(line);
    if (e["event"] == "claim_signed" && e["prefix"] == "203.0.113.77") {
      ++signed_claims;
      EXPECT_NE(e["reason"].get<std::string>().find("Outbound Connection to C2 Servers"),
                std::string::npos);
    }
  }
  EXPECT_EQ(signed_claims, 1u);
  EXPECT_EQ(daemon_.ctl_json({"status"})["own_seq"], 1);

  // IPv6 server address.
  r = http_request(address_, http::verb::post, c2_alert("2001:db8::77"));
  EXPECT_EQ(r.status, 200u);
  EXPECT_TRUE(find_prefix(daemon_.ctl_json({"blocks"}), "2001:db8::77"));

  daemon_.stop();
  const std::string m = daemon_.stopped_daemon().metrics_text();
  EXPECT_EQ(metric(m, R"(meshd_falco_alerts_total{result="claimed"})"), 2) << m;
  EXPECT_EQ(metric(m, R"(meshd_falco_alerts_total{result="suppressed"})"), 1);
  EXPECT_EQ(metric(m, R"(meshd_falco_alerts_total{result="no_address"})"), 0);
  EXPECT_EQ(metric(m, "meshd_falco_requests_total"), 3);
}

TEST_F(FalcoAlerts, AlertsWithoutADestinationAreCountedNotClaimed) {
  auto r = http_request(address_, http::verb::post, kTerminalShell);
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.body["mapped"], false);
  // An address Falco reports that this node protects: counted as refused, never signed.
  r = http_request(address_, http::verb::post, c2_alert("127.0.0.53"));
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(daemon_.ctl_json({"blocks"}), json::array());
  EXPECT_EQ(daemon_.ctl_json({"status"})["own_seq"], 0);
  // The refusal is in the event stream (meshctl events, /ui), with the reason.
  std::size_t refused_events = 0;
  auto evs = daemon_.ctl({"events", "--json", "--limit", "1000"});
  std::istringstream lines(evs.out);
  for (std::string line; std::getline(lines, line);) {
    json e = json::parse(line);
    if (e["event"] != "detection_refused") continue;
    ++refused_events;
    EXPECT_EQ(e["prefix"], "127.0.0.53");
    EXPECT_EQ(e["detector"], "falco");
    EXPECT_NE(e["why"].get<std::string>().find("protected"), std::string::npos) << e.dump();
  }
  EXPECT_EQ(refused_events, 1u);

  daemon_.stop();
  const std::string m = daemon_.stopped_daemon().metrics_text();
  EXPECT_EQ(metric(m, R"(meshd_falco_alerts_total{result="no_address"})"), 1) << m;
  EXPECT_EQ(metric(m, R"(meshd_falco_alerts_total{result="refused"})"), 1);
  EXPECT_EQ(metric(m, R"(meshd_falco_alerts_total{result="claimed"})"), 0);
}

TEST_F(FalcoAlerts, GarbageGets4xxAndACounterAndTheDaemonKeepsServing) {
  auto r = http_request(address_, http::verb::post, "{not json");
  EXPECT_EQ(r.status, 400u);
  EXPECT_NE(r.body.value("error", ""), "");
  r = http_request(address_, http::verb::post, R"({"rule":"r","priority":"Bogus","output":"x"})");
  EXPECT_EQ(r.status, 400u);
  EXPECT_NE(r.body.value("error", "").find("priority"), std::string::npos) << r.body.dump();
  r = http_request(address_, http::verb::post, R"([1, 2, 3])");
  EXPECT_EQ(r.status, 400u);
  r = http_request(address_, http::verb::get, "");
  EXPECT_EQ(r.status, 405u);

  // Still serving, both the endpoint and the control socket.
  r = http_request(address_, http::verb::post, c2_alert("198.51.100.66"));
  EXPECT_EQ(r.status, 200u);
  EXPECT_TRUE(find_prefix(daemon_.ctl_json({"blocks"}), "198.51.100.66"));

  daemon_.stop();
  const std::string m = daemon_.stopped_daemon().metrics_text();
  EXPECT_EQ(metric(m, R"(meshd_falco_alerts_total{result="invalid"})"), 3) << m;
  EXPECT_EQ(metric(m, R"(meshd_falco_requests_rejected_total{reason="method"})"), 1);
  EXPECT_EQ(metric(m, R"(meshd_falco_alerts_total{result="claimed"})"), 1);
}

// Any local process (or host-network pod) can reach the endpoint, and every alert it accepts
// becomes a claim this node signs: callers without the shared secret get 401, a counter and a
// log line, and nothing is claimed.
TEST_F(FalcoAlerts, UnauthenticatedOrForgedAlertsGet401AndAreNotClaimed) {
  auto r = http_request(address_, http::verb::post, c2_alert("203.0.113.90"), "");
  EXPECT_EQ(r.status, 401u);
  EXPECT_NE(r.body.value("error", "").find("no Authorization header"), std::string::npos)
      << r.body.dump();
  EXPECT_EQ(r.www_authenticate, "Bearer realm=\"meshd-falco\"");
  r = http_request(address_, http::verb::post, c2_alert("203.0.113.91"),
                   "Bearer s3cr3t-shared-with-falcosidekicK");
  EXPECT_EQ(r.status, 401u);
  EXPECT_NE(r.body.value("error", "").find("wrong secret"), std::string::npos);
  r = http_request(address_, http::verb::post, c2_alert("203.0.113.92"),
                   std::string("Basic ") + kSecret);
  EXPECT_EQ(r.status, 401u);
  r = http_request(address_, http::verb::post, c2_alert("203.0.113.93"),
                   std::string("Bearer ") + kSecret + "x");
  EXPECT_EQ(r.status, 401u);
  // A large unauthenticated body: still a clean 401 (the body is discarded, not stored).
  r = http_request(address_, http::verb::post, std::string(900 * 1024, ' ') + c2_alert("1.2.3.4"),
                   "");
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(daemon_.ctl_json({"blocks"}), json::array());
  EXPECT_EQ(daemon_.ctl_json({"status"})["own_seq"], 0);

  // The right secret (scheme case-insensitive) still works.
  r = http_request(address_, http::verb::post, c2_alert("203.0.113.94"),
                   std::string("bearer ") + kSecret);
  EXPECT_EQ(r.status, 200u);
  EXPECT_TRUE(find_prefix(daemon_.ctl_json({"blocks"}), "203.0.113.94"));

  daemon_.stop();
  const std::string m = daemon_.stopped_daemon().metrics_text();
  EXPECT_EQ(metric(m, R"(meshd_falco_requests_rejected_total{reason="unauthorized"})"), 5) << m;
  EXPECT_EQ(metric(m, R"(meshd_falco_alerts_total{result="claimed"})"), 1);
  EXPECT_EQ(metric(m, "meshd_falco_requests_total"), 1);
}

TEST(FalcoConfig, ListenWithoutASecretFileIsAConfigError) {
  auto c = app::parse_config("sensor: {falco_listen: \"127.0.0.1:2801\"}", "t.yaml");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("t.yaml: sensor.falco_secret_file: required when "
                                   "sensor.falco_listen is set"),
            std::string::npos)
      << c.error().message;
}

TEST(FalcoConfig, ShortOrMissingSecretFileIsAStartError) {
  TempDir dir;
  Identities ids(dir);
  std::ofstream(dir / "short.secret") << "tooshort\n";
  for (const auto& [file, why] : {std::pair{dir.file("short.secret"), "at least 16 characters"},
                                  std::pair{dir.file("missing.secret"), "cannot read"}}) {
    try {
      DaemonUnderTest d(dir, ids,
                        "  falco_listen: 127.0.0.1:0\n  falco_secret_file: " + file + "\n");
      ADD_FAILURE() << "started with " << file;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("sensor.falco_secret_file: "), std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find("tooshort"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace meshd::test
