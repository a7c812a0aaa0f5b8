// The daemon's usage evidence against colluding claims, end to end in-process: a real daemon
// (dryrun backend) whose connect events come from the test, and a certified peer on loopback
// (the real transport) relaying claims signed by three origins in three failure domains.
//
// What is checked: claims already held on a destination that becomes strongly used are
// re-checked once the usage bucket turns (their origins lose trust, the claims show as
// contradicted), the work is per destination and bucket, not per flow, too many moved
// destinations turn into one recheck of every target, and a claim on an unused address is
// still enforced on one domain's word.
#include "meshd/common/asio.hpp"

#include <chrono>
#include <future>
#include <mutex>

#include "meshd/common/clock.hpp"
#include "meshd/net/transport.hpp"
#include "proto/cert.hpp"
#include "proto/convert.hpp"
#include "proto/envelope.hpp"
#include "proto/keys.hpp"
#include "sensor/synthetic_events.hpp"
#include "sensor/usage_stats.hpp"
#include "tests/unit/app/daemon_harness.hpp"

namespace meshd::test {
namespace {

namespace asio = boost::asio;

// SyntheticEventSource behind a mutex: the test pushes from its thread, the daemon polls on its
// io thread.
class LockedEvents final : public sensor::EventSource {
 public:
  explicit LockedEvents(sensor::SyntheticEventSource s) : s_(std::move(s)) {}
  // All at once: the daemon's next drain sees every one of them.
  void push(std::vector<sensor::ConnectEvent> events) {
    std::lock_guard lock(mu_);
    for (auto& e : events) s_.push(std::move(e));
  }
  std::size_t poll(std::vector<sensor::ConnectEvent>& out, std::size_t max,
                   int timeout_ms) override {
    std::lock_guard lock(mu_);
    return s_.poll(out, max, timeout_ms);
  }
  std::uint64_t lost_events() const override { return 0; }
  int readable_fd() const override { return s_.readable_fd(); }
  int next_drain_in_ms() const override { return -1; }

 private:
  std::mutex mu_;
  sensor::SyntheticEventSource s_;
};

sensor::ConnectEvent flow(const std::string& dst, std::uint64_t cgroup, TimeMs at) {
  sensor::ConnectEvent e;
  e.at = at;
  e.cgroup_id = cgroup;
  e.tgid = 1000 + static_cast<std::uint32_t>(cgroup);
  e.comm = "workload";
  e.destination = *Prefix::parse(dst);
  e.port = 443;
  e.protocol = sensor::Protocol::tcp;
  return e;
}

// A certified peer on 127.0.0.1 (the daemon dials it) that pushes envelopes it is given.
class RelayPeer {
 public:
  RelayPeer(const TempDir& dir, const std::string& name) {
    auto ca = proto::load_public_key(dir / "ca/ca.pub");
    auto cert = proto::load_cert_file(dir / ("keys/" + name + ".cert"));
    auto key = proto::load_secret_key(dir / ("keys/" + name + ".key"));
    if (!ca || !cert || !key) throw std::runtime_error("relay identity does not load");
    auto identity = net::make_identity(std::move(*key), *cert, *ca, wall_now_ms());
    if (!identity) throw std::runtime_error(identity.error().message);
    net::TransportCallbacks cb;
    cb.on_peer_up = [this](net::PeerId id, const v1::NodeCert&) {
      std::lock_guard lock(mu_);
      peer_ = id;
    };
    cb.on_frame = [](net::PeerId, std::span<const std::uint8_t>) {};
    cb.on_peer_down = [this](net::PeerId, std::string_view) {
      std::lock_guard lock(mu_);
      peer_.reset();
    };
    transport_ =
        std::make_unique<net::Transport>(io_, std::move(*identity), net::TransportLimits{}, cb);
    auto bound = transport_->listen({asio::ip::make_address("127.0.0.1"), 0});
    if (!bound) throw std::runtime_error(bound.error().message);
    port_ = bound->port();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~RelayPeer() {
    asio::post(io_, [this] {
      transport_->stop();
      work_.reset();
    });
    thread_.join();
  }
  std::string seed() const { return "127.0.0.1:" + std::to_string(port_); }
  bool up() {
    std::lock_guard lock(mu_);
    return peer_.has_value();
  }
  // Pushes the envelope to the daemon; true once the transport took it.
  bool push(v1::Envelope env) {
    v1::Frame f;
    *f.mutable_envelope() = std::move(env);
    const std::string bytes = f.SerializeAsString();
    std::promise<bool> done;
    asio::post(io_, [&] {
      std::optional<net::PeerId> p;
      {
        std::lock_guard lock(mu_);
        p = peer_;
      }
      done.set_value(p && transport_->send(*p, proto::as_bytes(bytes)).has_value());
    });
    return done.get_future().get();
  }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::unique_ptr<net::Transport> transport_;
  std::mutex mu_;
  std::optional<net::PeerId> peer_;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

bool wait_for(const std::function<bool()>& cond, int timeout_ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < until) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return cond();
}

constexpr const char* kService = "198.18.0.10";

class UsageRecheck : public ::testing::Test {
 protected:
  UsageRecheck() : ids_(dir_) {
    // The relay peer and three claimants, each in its own failure domain, certified by the
    // fleet CA: the colluders of trust/README.md "Collusion resistance".
    identity("relay", "zone-b");
    identity("c1", "zone-b");
    identity("c2", "zone-c");
    identity("c3", "zone-d");
    relay_ = std::make_unique<RelayPeer>(dir_, "relay");
    auto src = sensor::SyntheticEventSource::create();
    if (!src) throw std::runtime_error(src.error().message);
    auto events = std::make_unique<LockedEvents>(std::move(*src));
    events_ = events.get();
    DaemonSetup setup;
    setup.mesh_peers = "[\"" + relay_->seed() + "\"]";
    setup.sensor_yaml = "  usage_bucket_ms: 1000\n  usage_buckets: 120\n";
    setup.events = std::move(events);
    // Ten domains in the fleet (four of them seen here): the full quorum is floor(10/3)+1 = 4,
    // one more than the colluders hold. Strong evidence needs 8 flows over 2 s.
    daemon_ = std::make_unique<DaemonUnderTest>(
        dir_, ids_, "policy:\n  fleet_domains: 10\n  benign_strong_span_ms: 2000\n",
        std::move(setup));
    if (!wait_for([&] { return relay_->up(); }, 10000))
      throw std::runtime_error("the daemon did not connect to the relay peer");
  }
  ~UsageRecheck() override {
    daemon_.reset();  // before the relay: the daemon's connection goes first
    relay_.reset();
  }

  void identity(const std::string& name, const std::string& domain) {
    Identities::run({"keys", "gen", "--out", dir_ / "keys", "--name", name});
    Identities::run({"ca", "sign", "--ca", dir_ / "ca", "--pub", dir_ / ("keys/" + name + ".pub"),
                     "--name", name, "--domain", domain, "--out",
                     dir_ / ("keys/" + name + ".cert")});
  }

  // A claim signed by `origin` (its own key and cert), relayed by the peer.
  void claim(const std::string& origin, const std::string& target, std::uint64_t seq,
             v1::Severity severity = v1::SEVERITY_CRITICAL, double confidence = 1.0) {
    auto key = proto::load_secret_key(dir_ / ("keys/" + origin + ".key"));
    auto cert = proto::load_cert_file(dir_ / ("keys/" + origin + ".cert"));
    ASSERT_TRUE(key && cert);
    v1::Claim c;
    c.set_origin(origin);
    c.set_seq(seq);
    *c.mutable_target() = proto::to_cidr(*Prefix::parse(target));
    c.set_direction(v1::DIRECTION_BOTH);
    c.set_detector("manual");
    c.set_severity(severity);
    c.set_confidence(static_cast<float>(confidence));
    c.set_issued_at_ms(wall_now_ms());
    c.set_ttl_ms(3'600'000);
    c.mutable_context()->set_reason("collusion test");
    v1::Envelope env = proto::sign_claim(c, *key);
    *env.mutable_signer_cert() = *cert;
    ASSERT_TRUE(relay_->push(std::move(env)));
  }

  json status() { return daemon_->ctl_json({"status"}); }
  std::uint64_t usage(const std::string& key) { return status()["usage"].value(key, 0ull); }
  json target(const std::string& ip) {
    json x = daemon_->ctl_json({"explain", ip});
    for (const auto& t : x["targets"])
      if (t.value("prefix", "") == ip) return t;
    return json();
  }
  double trust_of(const std::string& node) {
    for (const auto& t : daemon_->ctl_json({"trust"}))
      if (t.value("node", "") == node) return t.value("trust", -1.0);
    return -1;
  }
  // `flows` flows to `dst`, round robin over `sources` cgroups, spread evenly over the
  // `span_ms` before now; waits until the daemon has recorded them.
  void use(const std::string& dst, int flows, int sources, TimeMs span_ms) {
    const std::uint64_t before = usage("flows_recorded");
    const TimeMs now = wall_now_ms();
    std::vector<sensor::ConnectEvent> batch;
    for (int i = 0; i < flows; ++i)
      batch.push_back(flow(dst, 100 + static_cast<std::uint64_t>(i % sources),
                           now - span_ms + span_ms * i / std::max(1, flows - 1)));
    events_->push(std::move(batch));
    ASSERT_TRUE(wait_for([&] { return usage("flows_recorded") == before + flows; }, 5000))
        << status().dump();
  }

  TempDir dir_;
  Identities ids_;
  std::unique_ptr<RelayPeer> relay_;
  LockedEvents* events_ = nullptr;  // owned by the daemon
  std::unique_ptr<DaemonUnderTest> daemon_;
};

TEST_F(UsageRecheck, ClaimsHeldOnWhatBecomesStronglyUsedAreContradictedWhenTheBucketTurns) {
  // Light use first (3 flows, 2 workloads, 1 s: benign evidence, not strong): it demands
  // min(4, 1 + 3) = 4 domains, so the three colluders' claims are refused, but nobody is
  // contradicted yet.
  use(kService, 3, 2, 1000);
  for (auto [origin, seq] : {std::pair{"c1", 1}, {"c2", 1}, {"c3", 1}})
    claim(origin, kService, seq);
  ASSERT_TRUE(wait_for([&] { return target(kService)["claims"].size() == 3; }, 5000))
      << target(kService).dump(2);
  json t = target(kService);
  EXPECT_EQ(t["verdict"], "domains_short") << t["text"].get<std::string>();
  EXPECT_EQ(t["enforced"], false);
  EXPECT_EQ(t["benign_evidence"]["strong"], false);
  for (const auto& c : t["claims"]) EXPECT_EQ(c["contradicted"], false) << c.dump();
  const double prior = trust_of("c1");
  EXPECT_NEAR(prior, 0.5, 1e-6);

  // Then the fleet's workloads lean on it: 40 flows from 4 workloads over 5 s. The claims
  // already held are re-checked when the usage bucket turns (at most a second here).
  const std::uint64_t rounds0 = usage("recheck_rounds");
  const std::uint64_t dests0 = usage("rechecked_destinations");
  use(kService, 40, 4, 5000);
  ASSERT_TRUE(wait_for([&] { return usage("claims_contradicted") == 3; }, 5000))
      << status().dump(2);
  for (const char* origin : {"c1", "c2", "c3"})
    EXPECT_LT(trust_of(origin), prior - 0.15) << origin;  // 0.5 -> 0.286 at the defaults

  // Refused on two counts now: three domains where four are needed, and S (the claimants'
  // trust fell) below the threshold that the benign evidence raised. The verdict names the
  // first that fails (below_threshold); the terms show both.
  t = target(kService);
  const std::string text = t["text"];
  EXPECT_EQ(t["verdict"], "below_threshold") << text;
  EXPECT_LT(t["score"].get<double>(), t["threshold"].get<double>()) << text;
  EXPECT_EQ(t["enforced"], false);
  for (const auto& c : t["claims"]) EXPECT_EQ(c["contradicted"], true) << c.dump();
  EXPECT_EQ(t["benign_evidence"]["flows"], 43);
  EXPECT_EQ(t["benign_evidence"]["sources"], 4);
  EXPECT_EQ(t["benign_evidence"]["strong"], true);
  EXPECT_DOUBLE_EQ(t["benign_evidence"]["E"].get<double>(), 43.0);
  EXPECT_DOUBLE_EQ(t["cost_terms"]["benign"].get<double>(), 0.25 * 43);
  EXPECT_EQ(t["domains_required"], 4);
  EXPECT_EQ(t["quorum_max"], 4);
  EXPECT_EQ(t["fleet_domains"], 10);
  EXPECT_EQ(t["domains_supporting"], 3);
  EXPECT_NE(text.find("(contradicted local benign evidence)"), std::string::npos) << text;
  EXPECT_NE(text.find("STRONG"), std::string::npos) << text;

  // The work followed the destination, not the 40 flows: one destination per round, and
  // the 5 s of flows span at most a few buckets (they were all recorded within a second).
  const std::uint64_t rounds = usage("recheck_rounds") - rounds0;
  const std::uint64_t dests = usage("rechecked_destinations") - dests0;
  EXPECT_GE(rounds, 1u);
  EXPECT_LE(rounds, 3u);
  EXPECT_EQ(dests, rounds);
  EXPECT_EQ(usage("full_rechecks"), 0u);

  // One `usage_recheck` event says what the round did (events --json: one object a line).
  auto events = daemon_->ctl({"events", "--json", "--limit", "500"});
  ASSERT_EQ(events.exit_code, 0) << events.err;
  std::uint64_t contradicted = 0;
  std::istringstream lines(events.out);
  for (std::string line; std::getline(lines, line);) {
    const json e = json::parse(line, nullptr, false);
    if (!e.is_discarded() && e.value("event", "") == "usage_recheck")
      contradicted += e.value("contradicted", 0ull);
  }
  EXPECT_EQ(contradicted, 3u) << events.out;

  // Trust lost here does not stop a real C2 that nobody here uses: c1 alone (one domain, trust
  // now 0.286, confidence 0.95, high) is still enforced on receipt (C = 1, B = 4).
  claim("c1", "203.0.113.66", 2, v1::SEVERITY_HIGH, 0.95);
  ASSERT_TRUE(wait_for([&] { return target("203.0.113.66")["enforced"] == true; }, 5000))
      << target("203.0.113.66").dump(2);
}

TEST_F(UsageRecheck, TooManyMovedDestinationsBecomeOneRecheckOfEveryTarget) {
  claim("c2", kService, 1);
  ASSERT_TRUE(wait_for([&] { return target(kService)["claims"].size() == 1; }, 5000));
  const std::uint64_t full0 = usage("full_rechecks");
  const std::uint64_t dests0 = usage("rechecked_destinations");
  // More distinct destinations within one bucket than are tracked one by one.
  const TimeMs now = wall_now_ms();
  const int n = static_cast<int>(sensor::UsageStats::kMaxChanged) + 10;
  const std::uint64_t before = usage("flows_recorded");
  std::vector<sensor::ConnectEvent> batch;
  for (int i = 0; i < n; ++i)
    batch.push_back(
        flow("10.77." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1), 7, now));
  events_->push(std::move(batch));
  ASSERT_TRUE(wait_for([&] { return usage("flows_recorded") == before + n; }, 5000));
  ASSERT_TRUE(wait_for([&] { return usage("full_rechecks") > full0; }, 5000)) << status().dump(2);
  EXPECT_EQ(usage("rechecked_destinations"), dests0);  // none one by one
}

}  // namespace
}  // namespace meshd::test
