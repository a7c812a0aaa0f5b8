// Internal state of the daemon, shared by its implementation files (daemon.cpp: start-up
// and the event loop; local_events.cpp: events this node signs; control_handlers.cpp: the
// control API; metrics_page.cpp: /metrics). Not part of any public interface.
#pragma once

#include "meshd/common/asio.hpp"

#include <chrono>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_map>
#include <vector>

#include "meshd/app/config.hpp"
#include "meshd/app/control_server.hpp"
#include "meshd/app/crowdsec_bridge.hpp"
#include "meshd/app/daemon.hpp"
#include "meshd/app/enforcement.hpp"
#include "meshd/app/event_log.hpp"
#include "meshd/app/http_server.hpp"
#include "meshd/app/observability.hpp"
#include "meshd/app/opener.hpp"
#include "meshd/app/peer_directory.hpp"
#include "meshd/app/push_intake.hpp"
#include "meshd/app/store.hpp"
#include "meshd/app/subsystems.hpp"
#include "meshd/app/usage_adapter.hpp"
#include "meshd/common/clock.hpp"
#include "meshd/common/log_limit.hpp"
#include "meshd/core/node.hpp"
#include "meshd/net/transport.hpp"
#include "proto/crypto.hpp"
#include "proto/wire.pb.h"
#include "sensor/detectors/detection.hpp"
#include "sensor/detectors/fanout.hpp"
#include "sensor/detectors/threat_feed.hpp"
#include "sensor/falco_endpoint.hpp"
#include "sensor/pod_identity.hpp"
#include "sensor/usage_stats.hpp"
#include "trust/engine.hpp"

namespace meshd::app {

class MetricsWriter;

struct DaemonCounters {
  std::uint64_t local_claims = 0;  // claims this node signed
  std::uint64_t local_retractions = 0;
  std::uint64_t proofs_published = 0;
  std::uint64_t operator_decisions_submitted = 0;
  std::uint64_t frames_malformed = 0;  // undecodable gossip frames from peers
  std::uint64_t sends_failed = 0;
  std::uint64_t store_errors = 0;
  std::uint64_t enforcer_errors = 0;
  std::uint64_t enforcer_refused = 0;  // rules the backend refused (protected etc.)
  std::uint64_t detections = 0;
  std::uint64_t detections_suppressed = 0;  // already claimed recently
  std::uint64_t detections_refused = 0;     // no claim signed (protected target, store error)
  // Falco alerts the endpoint accepted, by what became of them.
  std::uint64_t falco_claimed = 0;
  std::uint64_t falco_suppressed = 0;
  std::uint64_t falco_refused = 0;
  std::uint64_t falco_no_address = 0;      // no usable remote address: counted, not claimed
  std::uint64_t falco_below_severity = 0;  // under the mapping's minimum severity
  std::uint64_t sensor_events = 0;
  std::uint64_t control_requests = 0;
  std::uint64_t control_errors = 0;
  std::uint64_t reloads = 0;
  std::uint64_t reload_failures = 0;
  // Usage re-checks (one round per usage bucket in which usage moved): destinations handed to
  // Node::on_usage_changed, and rounds that re-checked every target (too many moved).
  std::uint64_t usage_recheck_rounds = 0;
  std::uint64_t usage_rechecked_destinations = 0;
  std::uint64_t usage_full_rechecks = 0;
  // Pushes and the intake (push_intake.hpp): copies of an envelope already waiting there
  // (dropped), and pushes opened at once because it was full.
  std::uint64_t intake_copies = 0;
  std::uint64_t intake_full = 0;
};

struct Daemon::Impl {
  Daemon* self = nullptr;
  AppConfig config;
  std::string config_path;
  // Declared before `io`, so destroyed after it: destroying the io_context destroys the control
  // sessions it still holds (events --follow), and each unsubscribes from `subscribers`.
  EventLog events{2000};  // recent JSON lines (the newest 2,000)
  std::map<std::uint64_t, EventSink> subscribers;
  std::uint64_t next_subscriber = 1;
  boost::asio::io_context io;
  boost::asio::signal_set signals{io};
  boost::asio::steady_timer tick_timer{io};
  boost::asio::steady_timer housekeeping_timer{io};
  boost::asio::steady_timer sensor_timer{io};
  TimeMs tick_at = core::kNoDeadline;
  TimeMs started_at = 0;
  bool stopping = false;

  // Identity.
  std::optional<proto::SecretKey> key;
  v1::SignedCert cert;
  v1::NodeCert node_cert;
  proto::PublicKey ca;
  std::string node_id;
  std::string domain;

  std::optional<Store> store;
  // The core's envelopes live in `store` (declared before `node`, which uses it).
  std::unique_ptr<StoreArchive> archive;
  bool store_writable = true;      // as last logged by watch_store()
  TimeMs malformed_logged_at = 0;  // last warning about a malformed peer frame
  LogLimit rate_limit_log;         // warnings about peers over their rate limit
  trust::Params params;            // the opener reads TTL caps from here
  sensor::UsageStats usage_stats;
  std::unique_ptr<UsageAdapter> usage;
  // The usage bucket whose start last re-checked the evidence (recheck_usage_evidence).
  std::int64_t usage_bucket = std::numeric_limits<std::int64_t>::min();
  // Connect events from the caller instead of the backend (Daemon::create's `events`).
  std::unique_ptr<sensor::EventSource> injected_events;
  // Storage only: the engine is driven and read through `node` (core::Node's interface).
  std::unique_ptr<trust::Engine> engine;
  std::unique_ptr<ProductionOpener> opener;
  std::unique_ptr<core::SplitMix64> rng;
  std::unique_ptr<core::Node> node;
  std::unique_ptr<net::Transport> transport;
  std::unique_ptr<Enforcement> enforcement;
  std::unique_ptr<ControlServer> control;
  std::unique_ptr<HttpServer> http;
  std::unique_ptr<sensor::FalcoEndpoint> falco;  // sensor.falco_listen; null when off
  TimeMs falco_unauthorized_logged_at = 0;       // rate limit of the refusal log line
  std::uint64_t falco_unauthorized_unlogged = 0;
  std::unique_ptr<CrowdsecBridge> crowdsec;  // sensor.crowdsec.url; null when off
  std::optional<boost::asio::posix::stream_descriptor> sensor_fd;

  // Detectors.
  std::vector<std::unique_ptr<sensor::ThreatFeed>> feeds;
  std::unique_ptr<sensor::FanoutDetector> fanout;
  // cgroup id -> path -> container / pod, attached to detections and claims' context.
  std::optional<sensor::CgroupPathResolver> cgroups;
  std::unique_ptr<sensor::PodIdentityResolver> pods;
  std::unordered_map<Prefix, TimeMs, PrefixHash> claimed_at;  // suppression

  core::Actions actions;  // reused for every input
  // Received frames are written to the store once per I/O burst: on_frame's envelopes join
  // one open store batch, and what the core sends in answer waits here (by core peer id)
  // until flush_received() has committed that batch, so nothing is relayed before it is
  // durable. The flush is posted once per burst; any other input flushes first.
  std::vector<std::pair<core::PeerId, std::string>> deferred_sends;
  bool flush_posted = false;
  // While pushes wait in the intake, the batch stays open across opens (one per io turn):
  // it is committed, and its relays sent, once the intake is empty, once it holds
  // kBatchMaxEnvelopes envelopes or once it is kBatchMaxAge old. Under a flood that is one
  // transaction and one socket write per peer for up to 16 claims instead of for each
  // (mesh_claim_cost_bench: the CPU per accepted claim, tests/netns/README.md). Received
  // envelopes are still durable before they are relayed; what a crash loses was relayed by
  // no one here and comes back from the peers through anti-entropy.
  static constexpr std::size_t kBatchMaxEnvelopes = 16;
  static constexpr std::chrono::microseconds kBatchMaxAge{2000};
  std::size_t batch_envelopes = 0;                    // persisted into the open batch
  std::chrono::steady_clock::time_point batch_begun;  // first deferred persist or send of it
  bool batch_pending = false;                         // something waits for flush_received()
  // True when the posted flush may leave the batch open (see kBatchMaxEnvelopes).
  bool hold_batch() const;
  PeerDirectory peer_directory;  // connection <-> core peer id <-> node id
  // New pushes wait here for their signature check, one queue per signer served in turn
  // (push_intake.hpp). drain_intake() opens kIntakePerTurn of them per io turn: one, so that
  // between two opens (a signature check, the engine, a store write, relays: about a
  // millisecond) every connection reads its next frames into the intake. With 8 per turn the
  // readers fell behind the opens and an honest push still waited in its socket behind a
  // flood (mesh_hostile_bench rate-10x: honest p99 119 ms, against 19-37 ms with 1).
  static constexpr std::size_t kIntakePerSigner = 2048, kIntakeTotal = 8192, kIntakePerTurn = 1;
  PushIntake intake{kIntakePerSigner, kIntakeTotal};
  bool intake_scheduled = false;

  // node_protected_prefixes(config), read at start and on SIGHUP (it reads /proc and /etc).
  std::vector<trust::ProtectedPrefix> config_protected;
  // Addresses of fleet peers seen since start (protected, node-local) -> their node id.
  std::map<Prefix, std::string> peer_addresses;

  // Own claims by prefix (seq of the newest), so `block del` can retract them.
  std::map<Prefix, std::uint64_t> own_claims;

  DaemonCounters counters;
  Observability obs;  // propagation histograms, event ids, /ui and /metrics views
  // Block changes not yet written to the store's blocks table, by prefix text (the newest
  // change wins; nullopt = lifted). Flushed by housekeeping, so the cost follows the changes.
  std::unordered_map<std::string, std::optional<StoredBlock>> unsaved_blocks;
  TimeMs ledger_saved_at = 0;
  TimeMs last_prune = 0;

  // daemon.cpp
  Result<void> start();
  Result<void> restore_state(TimeMs now);
  void watch_store();
  net::TransportCallbacks peer_callbacks();
  ControlHooks control_hooks();
  Result<void> start_http();
  void start_sensor();
  void start_signals();
  void on_peer_up(net::PeerId id, const v1::NodeCert& cert);
  void on_frame(net::PeerId id, std::span<const std::uint8_t> payload);
  void on_rate_drop(net::PeerId id);
  // A new push (not seen, names a signer) goes to `intake` instead of the core: true when it
  // was queued there or dropped as a copy of one waiting; false = hand it to the core now.
  bool park_push(core::PeerId cid, const core::Message& msg);
  void drain_intake();
  // Hands one parked push to the core and applies what it answers (deferred, like a frame).
  void open_parked(PushIntake::Item item);
  // A frame of `cid` was dropped by a rate limit: one warning per 10 s at most, naming the
  // peer, its limit and its penalty (the core scored it; at its threshold it is banned).
  void log_rate_limited(core::PeerId cid, TimeMs now, const char* where);
  void on_peer_down(net::PeerId id, std::string_view reason);
  // `deferred`: from a received frame (one I/O burst's batch; see deferred_sends).
  void apply_actions(TimeMs now, bool deferred = false);
  void persist_actions(TimeMs now);
  // Commits the open store batch, then sends what waited for it.
  void flush_received();
  void apply_block_changes(const std::vector<trust::BlockChange>& changes, TimeMs now);
  void schedule_tick(TimeMs deadline);
  void refresh_protected(TimeMs now);
  void protect_peer_address(net::PeerId id, const std::string& node_id, TimeMs now);
  void save_blocks();
  void housekeeping();
  void recheck_usage_evidence(TimeMs now);
  // The connect-event source: the injected one, else the backend's (bpf), else null.
  sensor::EventSource* event_source();
  void reload();
  void on_signal_received(const boost::system::error_code& ec, int sig);
  void shutdown();
  // Appends one JSON line to the event log and sends it to subscribers.
  void record_event(const std::string& json_line);

  // local_events.cpp
  Result<std::uint64_t> submit_claim(const sensor::Detection& d, DurationMs ttl);
  Result<std::size_t> retract_own(const Prefix& prefix, const std::string& reason);
  Result<void> submit_operator_decision(const v1::Envelope& env, const v1::SignedCert& cert);
  void publish_proof(const core::ProofRequest& request, TimeMs now);
  Result<void> submit_local(v1::Envelope env, TimeMs now);
  void on_sensor_readable();
  void drain_sensor();
  void schedule_sensor_recheck();
  enum class DetectionOutcome { claimed, suppressed, refused };
  DetectionOutcome on_detection(const sensor::Detection& d);
  // Starts the Falco alert endpoint on sensor.falco_listen; alerts go through on_detection.
  Result<void> start_falco();
  void on_falco_unauthorized(const boost::asio::ip::tcp::endpoint& from, std::string_view why);
  void on_falco_alert(const sensor::FalcoAlert& alert,
                      const std::optional<sensor::Detection>& detection);

  // crowdsec.cpp: the CrowdSec bouncer (sensor.crowdsec).
  Result<void> start_crowdsec();
  void crowdsec_poll();
  void crowdsec_schedule(DurationMs delay);
  void crowdsec_failure(const Error& e);
  void on_crowdsec_answer(const std::string& body, bool full);
  void crowdsec_apply(const sensor::CrowdsecChanges& changes, TimeMs now);
  void crowdsec_drain_claims(TimeMs now);
  void crowdsec_housekeeping(TimeMs now);
  // Local-only decisions persisted by an earlier run, still active at `now` (store errors and
  // unreadable rows are logged and skipped).
  std::vector<sensor::CrowdsecHeld> crowdsec_stored(TimeMs now) const;
  // Explain's view of the CrowdSec decisions overlapping `prefix` (empty when off).
  nlohmann::json crowdsec_explain(const Prefix& prefix, TimeMs now) const;
  // The engine's block changes with CrowdSec's local blocks kept in force.
  std::vector<trust::BlockChange> crowdsec_overlay(
      const std::vector<trust::BlockChange>& changes) const;
  void crowdsec_metrics(MetricsWriter& w) const;

  // control_handlers.cpp
  // Never throws: a handler failure is answered as error "internal" and the daemon goes on.
  v1::ControlResponse handle(const v1::ControlRequest& request);
  v1::ControlResponse handle_request(const v1::ControlRequest& request, TimeMs now);

  // metrics_page.cpp
  std::string metrics_text() const;
};

}  // namespace meshd::app
