// The control API end to end: a real daemon (dryrun backend, no peers) answering meshctl's own
// command code over its real Unix socket. Every request type, its JSON fields, and its errors.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <regex>

#include <spdlog/sinks/base_sink.h>

#include "meshd/ctl/client.hpp"
#include "proto/cert.hpp"
#include "proto/convert.hpp"
#include "proto/envelope.hpp"
#include "proto/frame.hpp"
#include "proto/keys.hpp"
#include "tests/unit/app/daemon_harness.hpp"

namespace meshd::test {
namespace {

class ControlApi : public ::testing::Test {
 protected:
  ControlApi() : ids_(dir_), daemon_(dir_, ids_) {}

  // A request straight through the client library, bypassing meshctl's own argument checks,
  // so the daemon's validation is what is tested.
  Result<v1::ControlResponse> raw(const v1::ControlRequest& req) {
    return ctl::call(daemon_.socket(), req);
  }
  json status() { return daemon_.ctl_json({"status"}); }
  json blocks() { return daemon_.ctl_json({"blocks"}); }
  CtlRun block_add(const std::string& cidr, std::vector<std::string> more = {}) {
    std::vector<std::string> args{"block", "add", cidr, "--confidence", "0.9", "--reason", "test"};
    args.insert(args.end(), more.begin(), more.end());
    return daemon_.ctl(args);
  }
  std::vector<json> events() {
    auto r = daemon_.ctl({"events", "--json", "--limit", "1000"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<json> out;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);)
      if (!line.empty()) out.push_back(json::parse(line));
    return out;
  }
  std::size_t count_events(const std::string& kind, const std::string& prefix) {
    std::size_t n = 0;
    for (const auto& e : events())
      if (e.value("event", "") == kind && e.value("prefix", "") == prefix) ++n;
    return n;
  }

  TempDir dir_;
  Identities ids_;
  DaemonUnderTest daemon_;
};

// Regression: `mesh.revoked_serials: [abc]` aborted meshd at start (std::invalid_argument from
// stoull). A config built without validate() gets a start error naming the key.
TEST(DaemonStart, NonNumericRevokedSerialIsAStartErrorNotAnAbort) {
  TempDir dir;
  Identities ids(dir);
  auto c = app::parse_config(
      "enforcement: {backend: dryrun}\nsensor: {enabled: false}\n"
      "mesh: {listen: \"\"}\nmetrics: {listen: \"\"}\n",
      "t.yaml");
  ASSERT_TRUE(c) << c.error().message;
  c->node.key = ids.node_key();
  c->node.cert = ids.node_cert();
  c->node.ca = ids.ca_pub();
  c->node.data_dir = dir / "data";
  c->control_socket = dir / "ctl.sock";
  c->mesh.revoked_serials = {"12", "abc"};
  auto d = app::Daemon::create(std::move(*c), "");
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().message, "mesh.revoked_serials: 'abc' is not an integer");
}

TEST_F(ControlApi, StatusNamesNodePeersEnforcedAndBackend) {
  json s = status();
  EXPECT_EQ(s["node"], "node-1");
  EXPECT_EQ(s["domain"], "zone-a");
  EXPECT_EQ(s["peers"], 0);
  EXPECT_EQ(s["enforced"], 0);
  EXPECT_EQ(s["backend"], "dryrun");
  EXPECT_EQ(s["falco_listen"], "");  // off unless sensor.falco_listen is set
  auto human = daemon_.ctl({"status"});
  ASSERT_EQ(human.exit_code, 0) << human.err;
  EXPECT_NE(human.out.find("node: node-1\n"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("backend: dryrun\n"), std::string::npos) << human.out;
}

TEST_F(ControlApi, SocketIsOwnerOnly) {
  struct stat st {};
  ASSERT_EQ(::stat(daemon_.socket().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(ControlApi, BlockAddIpv4HostIsSignedEnforcedAndListed) {
  const auto before = wall_now_ms();
  auto r = block_add("203.0.113.7", {"--ttl", "10m", "--severity", "critical"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("claimed 203.0.113.7 (seq 1): enforced here"), std::string::npos) << r.out;

  json arr = blocks();
  ASSERT_TRUE(arr.is_array());
  auto b = find_prefix(arr, "203.0.113.7");
  ASSERT_TRUE(b) << arr.dump();
  EXPECT_EQ((*b)["enforced"], true);
  EXPECT_EQ((*b)["origins"], json::array({"node-1"}));
  EXPECT_GT((*b)["score"].get<double>(), 0.0);
  EXPECT_GE((*b)["score"].get<double>(), (*b)["threshold"].get<double>());
  // The requested 10 minutes bound the block (the policy may grant less, never more).
  const auto expires = (*b)["expires_at"].get<std::int64_t>();
  EXPECT_GT(expires, before);
  EXPECT_LE(expires, wall_now_ms() + 10 * 60'000);
  EXPECT_EQ(status()["enforced"], 1);
  EXPECT_EQ(status()["own_seq"], 1);

  auto table = daemon_.ctl({"blocks"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("203.0.113.7"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("node-1"), std::string::npos) << table.out;
}

TEST_F(ControlApi, BlockAddIpv6Cidr) {
  auto r = block_add("2001:db8:bad::/48", {"--direction", "egress"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto b = find_prefix(blocks(), "2001:db8:bad::/48");
  ASSERT_TRUE(b);
  EXPECT_EQ((*b)["origins"], json::array({"node-1"}));
  EXPECT_EQ((*b)["direction"], "egress");
  EXPECT_TRUE((*b)["enforced"].is_boolean());
  EXPECT_TRUE((*b)["expires_at"].is_number_integer());
}

TEST_F(ControlApi, BlockAddBadInputIsOneClearLineAndNothingIsSigned) {
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const Case cases[] = {
      {{"block", "add", "10.0.0.300", "--confidence", "0.5", "--reason", "x"}, "10.0.0.300"},
      {{"block", "add", "10.0.0.1/8", "--confidence", "0.5", "--reason", "x"}, "10.0.0.0/8"},
      {{"block", "add", "not-an-ip", "--confidence", "0.5", "--reason", "x"}, "not-an-ip"},
      {{"block", "add", "198.51.100.21", "--confidence", "1.5", "--reason", "x"}, "[0, 1]"},
      {{"block", "add", "198.51.100.21", "--confidence", "0.5", "--reason", "x", "--ttl",
        "10 parsecs"},
       "is not a duration"},
      {{"block", "add", "198.51.100.21", "--confidence", "0.5", "--reason", "x", "--ttl", "-5m"},
       "is not a duration"},
      {{"block", "add", "198.51.100.21", "--confidence", "0.5", "--reason", "x", "--severity",
        "dire"},
       "'dire' is not low"},
  };
  for (const auto& c : cases) {
    auto r = daemon_.ctl(c.args);
    EXPECT_EQ(r.exit_code, 1) << c.args[2];
    EXPECT_TRUE(r.err.starts_with("meshctl: ")) << r.err;
    EXPECT_EQ(r.err.find('\n'), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
  }

  // The daemon checks what the client checks: a request that skips meshctl gets an error code.
  auto add = [&](const std::string& cidr, double confidence, std::int64_t ttl_ms) {
    v1::ControlRequest req;
    req.mutable_block_add()->set_cidr(cidr);
    req.mutable_block_add()->set_confidence(confidence);
    req.mutable_block_add()->set_reason("raw");
    req.mutable_block_add()->set_ttl_ms(ttl_ms);
    return raw(req);
  };
  auto e = add("10.0.0.300", 0.5, 0);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, "bad_cidr");
  e = add("", 0.5, 0);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, "bad_cidr");
  e = add("198.51.100.21", 1.01, 0);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, "bad_confidence");
  e = add("198.51.100.21", std::nan(""), 0);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, "bad_confidence");
  e = add("198.51.100.21", 0.5, -60'000);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, "bad_duration");
  EXPECT_NE(e.error().message.find("ttl"), std::string::npos) << e.error().message;

  json s = status();  // still serving; nothing was signed
  EXPECT_EQ(s["own_seq"], 0);
  EXPECT_TRUE(blocks().empty());
}

TEST_F(ControlApi, BlockAddInsideProtectedPrefixIsRefusedNotSigned) {
  // Signing it would be gossiped and, for a fleet-wide protected prefix, be taken by every
  // peer as proof of misbehaviour against this node.
  auto r = block_add("127.0.0.1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("protected"), std::string::npos) << r.err;
  v1::ControlRequest req;
  req.mutable_block_add()->set_cidr("169.254.169.254");
  req.mutable_block_add()->set_confidence(1);
  auto e = raw(req);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, "protected");
  EXPECT_EQ(status()["own_seq"], 0);
  EXPECT_EQ(count_events("claim_signed", "127.0.0.1"), 0u);
}

TEST_F(ControlApi, BlockDelRetractsOwnClaimAndRefusesUnknown) {
  ASSERT_EQ(block_add("198.51.100.0/24").exit_code, 0);
  ASSERT_TRUE(find_prefix(blocks(), "198.51.100.0/24"));
  ASSERT_EQ((*find_prefix(blocks(), "198.51.100.0/24"))["enforced"], true);

  auto del = daemon_.ctl({"block", "del", "198.51.100.0/24", "--reason", "false alarm"});
  ASSERT_EQ(del.exit_code, 0) << del.err;
  EXPECT_EQ(del.out, "retracted 198.51.100.0/24\n");
  auto b = find_prefix(blocks(), "198.51.100.0/24");
  EXPECT_TRUE(!b || (*b)["enforced"] == false);
  EXPECT_EQ(status()["enforced"], 0);
  EXPECT_EQ(count_events("retraction_signed", "198.51.100.0/24"), 1u);
  EXPECT_EQ(count_events("block_lift", "198.51.100.0/24"), 1u);

  // Nothing of ours to retract: an error, and no retraction signed or gossiped.
  for (const char* cidr : {"198.51.100.0/24", "203.0.113.99"}) {
    auto again = daemon_.ctl({"block", "del", cidr});
    EXPECT_EQ(again.exit_code, 1) << cidr;
    EXPECT_NE(again.err.find("no claim of its own"), std::string::npos) << again.err;
  }
  v1::ControlRequest req;
  req.mutable_block_del()->set_cidr("203.0.113.99");
  auto e = raw(req);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, "not_claimed");
  req.mutable_block_del()->set_cidr("203.0.113.999");
  e = raw(req);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, "bad_cidr");
  EXPECT_EQ(status()["own_seq"], 2);  // the claim and its one retraction
}

TEST_F(ControlApi, BlockDelRetractsAClaimSignedBeforeARestart) {
  ASSERT_EQ(block_add("203.0.113.30").exit_code, 0);
  daemon_.destroy();
  DaemonUnderTest again(dir_, ids_);  // same data dir: the claim comes back from the store
  auto b = find_prefix(again.ctl_json({"blocks"}), "203.0.113.30");
  ASSERT_TRUE(b);
  EXPECT_EQ((*b)["origins"], json::array({"node-1"}));
  auto del = again.ctl({"block", "del", "203.0.113.30"});
  ASSERT_EQ(del.exit_code, 0) << del.err;
  b = find_prefix(again.ctl_json({"blocks"}), "203.0.113.30");
  EXPECT_TRUE(!b || (*b)["enforced"] == false);
  EXPECT_EQ(again.ctl_json({"status"})["own_seq"], 2);  // the sequence survived the restart
}

TEST_F(ControlApi, ExplainGivesTheScoreCostBenefitBreakdown) {
  ASSERT_EQ(block_add("203.0.113.9").exit_code, 0);
  json x = daemon_.ctl_json({"explain", "203.0.113.9"});
  EXPECT_EQ(x["query"], "203.0.113.9");
  ASSERT_EQ(x["targets"].size(), 1u);
  const json& t = x["targets"][0];
  EXPECT_EQ(t["prefix"], "203.0.113.9");
  EXPECT_EQ(t["verdict"], "enforce");
  EXPECT_EQ(t["enforce"], true);
  EXPECT_EQ(t["enforced"], true);
  const double S = t["score"], C = t["cost"], B = t["benefit"], threshold = t["threshold"];
  EXPECT_GT(C, 0);
  EXPECT_GT(B, 0);
  EXPECT_NEAR(threshold, C / (B + C), 1e-9);
  EXPECT_GE(S, threshold);
  ASSERT_EQ(t["claims"].size(), 1u);
  const json& c = t["claims"][0];
  EXPECT_EQ(c["origin"], "node-1");
  EXPECT_EQ(c["detector"], "manual");
  EXPECT_NEAR(c["confidence"].get<double>(), 0.9, 1e-6);  // a float on the wire
  EXPECT_NEAR(c["contribution"].get<double>(),
              c["trust"].get<double>() * c["confidence"].get<double>(), 1e-9);
  ASSERT_EQ(t["domains"].size(), 1u);
  EXPECT_EQ(t["domains"][0]["domain"], "zone-a");
  EXPECT_EQ(c["contradicted"], false);

  // The collusion-resistance terms (trust/README.md): C term by term, the benign evidence E
  // and what it is made of, domains required against those backing the target, the benefit
  // cap, every pivotal domain's payer (none: this node's own claim is free).
  const json& k = t["cost_terms"];
  EXPECT_NEAR(k["base"].get<double>() + k["usage"].get<double>() + k["breadth"].get<double>() +
                  k["benign"].get<double>(),
              C, 1e-9);
  EXPECT_EQ(k["benign"], 0.0);
  const json& ev = t["benign_evidence"];
  for (const char* f : {"flows", "sources", "span_ms", "flagged", "E", "strong"})
    EXPECT_TRUE(ev.contains(f)) << f << " in " << ev.dump();
  EXPECT_EQ(ev["E"], 0.0);
  EXPECT_EQ(ev["strong"], false);
  EXPECT_EQ(t["domains_required"], 1);
  EXPECT_EQ(t["quorum_max"], 1);  // D = 1: this node's own domain
  EXPECT_EQ(t["fleet_domains"], 1);
  EXPECT_EQ(t["self_claim"], true);
  EXPECT_GE(t["benefit_claimed"].get<double>(), B - 1e-9);
  EXPECT_NEAR(B, std::min(t["benefit_claimed"].get<double>(), t["benefit_cap"].get<double>()),
              1e-9);
  EXPECT_TRUE(t["payers"].is_array());
  EXPECT_TRUE(t["payers"].empty()) << t["payers"].dump();

  // Readable by a person: the same breakdown as text.
  auto human = daemon_.ctl({"explain", "203.0.113.9"});
  ASSERT_EQ(human.exit_code, 0) << human.err;
  for (const char* part :
       {"target 203.0.113.9 ", "decision: enforce", "S = ", "C = ", "B = ", "threshold C/(B+C)",
        "node-1#1", "C = base ", "benign 0.000 (cost_benign x E)", "local benign evidence: E = 0",
        "domains required = 1", "B = min(claimed "})
    EXPECT_NE(human.out.find(part), std::string::npos) << part << " in\n" << human.out;

  // An address nobody claimed: no claims, nothing enforced, S = 0 below the threshold.
  json u = daemon_.ctl_json({"explain", "198.51.100.21"});
  ASSERT_EQ(u["targets"].size(), 1u);
  const json& n = u["targets"][0];
  EXPECT_EQ(n["verdict"], "no_claims");
  EXPECT_EQ(n["enforce"], false);
  EXPECT_EQ(n["enforced"], false);
  EXPECT_EQ(n["score"], 0.0);
  EXPECT_TRUE(n["claims"].empty());
  EXPECT_GT(n["threshold"].get<double>(), 0.0);

  // A protected address says why.
  json p = daemon_.ctl_json({"explain", "127.0.0.1"});
  EXPECT_EQ(p["targets"][0]["verdict"], "protected");
  EXPECT_NE(p["targets"][0]["protected_reason"], "");

  auto bad = daemon_.ctl({"explain", "nonsense"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_TRUE(bad.err.starts_with("meshctl: ")) << bad.err;
}

TEST_F(ControlApi, TrustListsThisNodeAsSelf) {
  json arr = daemon_.ctl_json({"trust"});
  ASSERT_TRUE(arr.is_array());
  const json* self = nullptr;
  for (const auto& t : arr)
    if (t["node"] == "node-1") self = &t;
  ASSERT_NE(self, nullptr) << arr.dump();
  EXPECT_EQ((*self)["self"], true);
  EXPECT_EQ((*self)["domain"], "zone-a");
  EXPECT_EQ((*self)["quarantined"], false);
  EXPECT_GT((*self)["trust"].get<double>(), 0.0);
  auto table = daemon_.ctl({"trust"});
  ASSERT_EQ(table.exit_code, 0);
  EXPECT_NE(table.out.find("node-1"), std::string::npos);
}

TEST_F(ControlApi, PeersIsEmptyWithoutAMesh) {
  EXPECT_EQ(daemon_.ctl_json({"peers"}), json::array());
  auto table = daemon_.ctl({"peers"});
  ASSERT_EQ(table.exit_code, 0);
  EXPECT_TRUE(table.out.starts_with("NODE")) << table.out;
}

TEST_F(ControlApi, EventsShowTheBlockAdd) {
  ASSERT_EQ(block_add("203.0.113.11").exit_code, 0);
  auto evs = events();
  ASSERT_FALSE(evs.empty());
  EXPECT_EQ(evs.front()["event"], "started");
  bool signed_claim = false, enforced = false;
  std::int64_t signed_us = 0, enforced_us = 0;
  // "at_us" is the same clock reading as "at", in microseconds: at == floor(at_us / 1000).
  auto times_agree = [](const json& e) {
    ASSERT_TRUE(e.contains("at_us") && e["at_us"].is_number_integer()) << e.dump();
    ASSERT_TRUE(e["at"].is_number_integer()) << e.dump();
    EXPECT_EQ(e["at"].get<std::int64_t>(), e["at_us"].get<std::int64_t>() / 1000) << e.dump();
  };
  for (const auto& e : evs) {
    if (e["event"] == "claim_signed" && e["prefix"] == "203.0.113.11") {
      signed_claim = true;
      EXPECT_EQ(e["detector"], "manual");
      EXPECT_EQ(e["reason"], "test");
      EXPECT_EQ(e["seq"], 1);
      times_agree(e);
      signed_us = e.value("at_us", std::int64_t{0});
    }
    if (e["event"] == "block_enforce" && e["prefix"] == "203.0.113.11") {
      enforced = true;
      times_agree(e);
      enforced_us = e.value("at_us", std::int64_t{0});
    }
  }
  EXPECT_TRUE(signed_claim);
  EXPECT_TRUE(enforced);
  // The claim's time is read before it is signed, the enforcement's when the block is applied.
  EXPECT_GT(signed_us, 0);
  EXPECT_GE(enforced_us, signed_us);
  auto limited = daemon_.ctl({"events", "--json", "--limit", "1"});
  ASSERT_EQ(limited.exit_code, 0);
  EXPECT_EQ(std::count(limited.out.begin(), limited.out.end(), '\n'), 1);
}

TEST_F(ControlApi, EventsFollowStreamsNewEvents) {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<json> seen;
  std::size_t answers = 0;
  Result<void> ended;
  v1::ControlRequest req;
  req.mutable_events()->set_follow(true);
  req.mutable_events()->set_limit(1);
  std::thread follower([&] {
    ended = ctl::stream(daemon_.socket(), req, [&](const v1::ControlResponse& r) {
      json j = json::parse(r.json());
      std::lock_guard lock(mu);
      ++answers;
      if (j.is_array())
        for (auto& e : j) seen.push_back(e);
      else
        seen.push_back(j);
      cv.notify_all();
    });
  });
  auto wait_for = [&](auto done) {
    std::unique_lock lock(mu);
    // A guard against a hang, not a synchronisation: the condition is what is waited for.
    return cv.wait_for(lock, std::chrono::seconds(20), done);
  };
  // The daemon subscribes the connection in the same turn as it sends the backlog.
  ASSERT_TRUE(wait_for([&] { return answers >= 1; }));
  EXPECT_EQ(seen.size(), 1u);  // --limit 1: only the newest recorded event first
  ASSERT_EQ(block_add("203.0.113.12").exit_code, 0);
  EXPECT_TRUE(wait_for([&] {
    for (const auto& e : seen)
      if (e.value("event", "") == "claim_signed" && e.value("prefix", "") == "203.0.113.12")
        return true;
    return false;
  }));
  daemon_.destroy();  // closes the stream: the follower returns
  follower.join();
  EXPECT_TRUE(ended) << ended.error().message;
}

TEST_F(ControlApi, OperatorDecisionsBlockAndUnblock) {
  const std::string key = ids_.d / "keys/alice.key", cert = ids_.d / "keys/alice.cert";
  auto block = daemon_.ctl({"decision", "block", "198.51.100.250", "--operator-key", key,
                            "--operator-cert", cert, "--reason", "incident 42"});
  ASSERT_EQ(block.exit_code, 0) << block.err;
  EXPECT_NE(block.out.find("operator block 198.51.100.250 signed by alice"), std::string::npos);
  auto b = find_prefix(blocks(), "198.51.100.250");
  ASSERT_TRUE(b);
  EXPECT_EQ((*b)["enforced"], true);
  EXPECT_EQ((*b)["by_operator"], true);

  auto unblock = daemon_.ctl(
      {"decision", "unblock", "198.51.100.250", "--operator-key", key, "--operator-cert", cert});
  ASSERT_EQ(unblock.exit_code, 0) << unblock.err;
  b = find_prefix(blocks(), "198.51.100.250");
  EXPECT_TRUE(!b || (*b)["enforced"] == false);

  // Unblock of this node's own claim, marked a false positive: lifted and the claim dropped.
  ASSERT_EQ(block_add("203.0.113.20").exit_code, 0);
  auto fp = daemon_.ctl({"decision", "unblock", "203.0.113.20", "--operator-key", key,
                         "--operator-cert", cert, "--false-positive"});
  ASSERT_EQ(fp.exit_code, 0) << fp.err;
  b = find_prefix(blocks(), "203.0.113.20");
  EXPECT_TRUE(!b || (*b)["enforced"] == false) << b->dump();
  EXPECT_EQ(status()["enforced"], 0);
}

TEST_F(ControlApi, OperatorDecisionFromAnotherCaIsRefused) {
  auto r =
      daemon_.ctl({"decision", "block", "203.0.113.60", "--operator-key",
                   ids_.d / "keys/mallory.key", "--operator-cert", ids_.d / "keys/mallory.cert"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.err.starts_with("meshctl: ")) << r.err;
  EXPECT_EQ(r.err.find('\n'), std::string::npos);
  EXPECT_FALSE(find_prefix(blocks(), "203.0.113.60"));

  // The same through the client library, to see the daemon's error code.
  auto op_key = proto::load_secret_key(ids_.d / "keys/mallory.key");
  auto op_cert = proto::load_cert_file(ids_.d / "keys/mallory.cert");
  ASSERT_TRUE(op_key && op_cert);
  v1::OperatorDecision d;
  d.set_operator_id("mallory");
  d.set_seq(1);
  d.set_action(v1::OPERATOR_ACTION_BLOCK);
  *d.mutable_target() = proto::to_cidr(*Prefix::parse("203.0.113.60"));
  d.set_issued_at_ms(wall_now_ms());
  v1::ControlRequest req;
  *req.mutable_operator_decision()->mutable_decision() = proto::sign_operator_decision(d, *op_key);
  *req.mutable_operator_decision()->mutable_operator_cert() = *op_cert;
  auto e = raw(req);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, "bad_operator_cert");

  // A node cert is not an operator cert, even from the right CA.
  auto node_key = proto::load_secret_key(ids_.node_key());
  auto node_cert = proto::load_cert_file(ids_.node_cert());
  ASSERT_TRUE(node_key && node_cert);
  d.set_operator_id("node-1");
  *req.mutable_operator_decision()->mutable_decision() =
      proto::sign_operator_decision(d, *node_key);
  *req.mutable_operator_decision()->mutable_operator_cert() = *node_cert;
  e = raw(req);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, "bad_operator_cert");
  EXPECT_NE(e.error().message.find("operator role"), std::string::npos) << e.error().message;

  // Not a decision at all.
  req.mutable_operator_decision()->mutable_decision()->set_kind(v1::BODY_KIND_CLAIM);
  e = raw(req);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, "bad_request");
  EXPECT_FALSE(find_prefix(blocks(), "203.0.113.60"));
}

// Raw bytes on the control socket: one connection, one write, the daemon's reply frame.
std::optional<v1::ControlResponse> send_raw(const std::string& socket, const std::string& bytes) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket.c_str(), socket.size() + 1);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  proto::FrameDecoder decoder(1 << 20);
  std::optional<v1::ControlResponse> out;
  for (;;) {
    std::uint8_t buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    decoder.feed({buf, static_cast<std::size_t>(n)});
    if (auto f = decoder.next(); f && *f) {
      out.emplace();
      EXPECT_TRUE(out->ParseFromArray((*f)->data(), static_cast<int>((*f)->size())));
      break;
    }
  }
  ::close(fd);
  return out;
}

std::string framed(const std::string& payload) {
  std::string out(4, '\0');
  const auto n = static_cast<std::uint32_t>(payload.size());
  out[0] = static_cast<char>(n >> 24);
  out[1] = static_cast<char>(n >> 16);
  out[2] = static_cast<char>(n >> 8);
  out[3] = static_cast<char>(n);
  return out + payload;
}

TEST_F(ControlApi, GarbageRequestsGetAnErrorAndTheDaemonKeepsServing) {
  // Not a protobuf.
  auto r = send_raw(daemon_.socket(), framed("\xff\xff\xff garbage"));
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->ok());
  EXPECT_EQ(r->error_code(), "bad_request");
  // A well-formed message with no request this daemon knows (a future oneof field).
  r = send_raw(daemon_.socket(), framed(std::string("\xca\x06\x00", 3)));  // field 105, empty
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error_code(), "bad_request");
  // An empty frame.
  r = send_raw(daemon_.socket(), framed(""));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error_code(), "bad_request");
  // Somebody speaking HTTP to it: the length prefix "GET " is ~1.2 GB.
  r = send_raw(daemon_.socket(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error_code(), "frame_too_large");
  // Half a frame, then the client goes away.
  {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, daemon_.socket().c_str(), daemon_.socket().size() + 1);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::write(fd, "\x00\x00\x01\x00\x08", 5), 5);
    ::close(fd);
  }
  // A reason that is not UTF-8 (protobuf refuses to parse it as a string field).
  {
    v1::ControlRequest req;
    req.mutable_block_add()->set_cidr("203.0.113.177");
    req.mutable_block_add()->set_confidence(0.9);
    req.mutable_block_add()->set_reason("\xff\xfe bad");
    r = send_raw(daemon_.socket(), framed(req.SerializePartialAsString()));
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->ok());
  }
  json s = status();
  EXPECT_EQ(s["node"], "node-1");
  EXPECT_EQ(s["own_seq"], 0);
}

TEST_F(ControlApi, MeshctlSaysWhenTheDaemonIsNotRunning) {
  daemon_.stop();
  auto r = daemon_.ctl({"status"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot reach meshd at " + daemon_.socket()), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(daemon_.socket()));  // removed on clean shutdown
}

// Keeps the default logger's lines (the daemon logs on its own thread).
class LineSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::vector<std::string> lines() {
    std::lock_guard lock(mutex_);
    return lines_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& m) override {
    lines_.emplace_back(m.payload.data(), m.payload.size());
  }
  void flush_() override {}

 private:
  std::vector<std::string> lines_;
};

// A daemon whose info lines are kept: the sink is added before the daemon's thread starts and
// removed after it stopped.
class BlockLog : public ::testing::Test {
 protected:
  BlockLog() : sink_(install()), ids_(dir_), daemon_(dir_, ids_) {}
  ~BlockLog() override {
    daemon_.stop();
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
    spdlog::set_level(spdlog::level::warn);
  }
  static std::shared_ptr<LineSink> install() {
    ensure_test_logger();
    auto sink = std::make_shared<LineSink>();
    spdlog::default_logger()->sinks().push_back(sink);
    spdlog::set_level(spdlog::level::info);
    return sink;
  }

  std::shared_ptr<LineSink> sink_;
  TempDir dir_;
  Identities ids_;
  DaemonUnderTest daemon_;
};

// A burst of block changes (a peer flooding valid claims gives one per claim) is logged one by
// one only up to kBlockLinesPerSecond (20) a second; the rest are counted in one summary line
// a second, so every change is still accounted for in the log, and listed in the events.
TEST_F(BlockLog, ABurstOfBlockChangesIsLoggedUpToTwentyLinesASecondAndTheRestSummarised) {
  constexpr int kChanges = 60;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 1; i <= kChanges; ++i)
    ASSERT_EQ(daemon_
                  .ctl({"block", "add", "198.51.100." + std::to_string(i), "--confidence", "0.9",
                        "--reason", "burst"})
                  .exit_code,
              0);
  const double burst_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::regex summary_re(R"(^(\d+) more block changes in the last second, not logged)");
  int single = 0, summarised = 0;
  auto count = [&] {
    single = summarised = 0;
    for (const auto& l : sink_->lines()) {
      std::smatch m;
      if (l.rfind("enforce 198.51.100.", 0) == 0)
        ++single;
      else if (std::regex_search(l, m, summary_re))
        summarised += std::stoi(m[1]);
    }
    return single + summarised >= kChanges;
  };
  // The summary of the last second comes with the next housekeeping tick (every second).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!count() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(single + summarised, kChanges) << single << " lines, " << summarised << " summarised";
  // The budget is refilled once a second: a burst of B seconds gets at most 20 x (B + 2) lines
  // (40 for a burst under a second, of 60 changes).
  EXPECT_LE(single, 20 * (static_cast<int>(burst_s) + 2)) << "burst took " << burst_s << " s";
  EXPECT_GE(single, 1);
  auto r = daemon_.ctl({"events", "--json", "--limit", "1000"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int enforce_events = 0;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    const json e = json::parse(line);
    if (e.value("event", "") == "block_enforce" &&
        e.value("prefix", "").rfind("198.51.100.", 0) == 0)
      ++enforce_events;
  }
  EXPECT_EQ(enforce_events, kChanges);
}

}  // namespace
}  // namespace meshd::test
