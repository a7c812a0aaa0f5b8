// Events this node signs: claims from its detectors and `meshctl block add`, retractions
// from `meshctl block del`, misbehaviour proofs the core asks for, and operator decisions
// relayed from meshctl (already signed by the operator key).
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "meshd/app/daemon_impl.hpp"
#include "meshd/app/ui_api.hpp"
#include "proto/convert.hpp"
#include "proto/envelope.hpp"

namespace meshd::app {

using nlohmann::json;

namespace {}  // namespace

Result<void> Daemon::Impl::submit_local(v1::Envelope env, TimeMs now) {
  if (!env.has_signer_cert()) *env.mutable_signer_cert() = cert;
  actions.clear();
  auto r = node->on_local_event(core::make_envelope(env.SerializeAsString()), now, actions);
  apply_actions(now);
  return r;
}

Result<std::uint64_t> Daemon::Impl::submit_claim(const sensor::Detection& d, DurationMs ttl) {
  // One clock reading: `now` (the claim's issued_at_ms and the event's "at") is wall_now_ms()
  // of this instant, at_us the same instant in microseconds (sub-ms delay measurements).
  const std::int64_t now_us = realtime_ns() / 1000;
  const TimeMs now = now_us / 1000;
  // A claim inside a protected prefix is refused by this node's own engine, yet the core would
  // still gossip it, and every peer sharing a fleet-wide protected list takes it as proof of
  // misbehaviour and quarantines this node. Such a claim is never signed.
  if (auto x = node->explain(d.prefix, now);
      x.decision.verdict == trust::Verdict::protected_prefix && x.protected_by &&
      x.protected_by->contains(d.prefix))
    return fail("protected", d.prefix.to_string() + " is inside protected " +
                                 x.protected_by->to_string() + " (" + x.protected_reason +
                                 "): no claim is signed for it");
  auto seq = store->next_sequence();  // durable before signing: a crash never reuses it
  if (!seq) {
    ++counters.store_errors;
    watch_store();
    return fail(seq.error().code, "no claim signed: " + seq.error().message);
  }
  v1::Claim c;
  c.set_origin(node_id);
  c.set_seq(*seq);
  *c.mutable_target() = proto::to_cidr(d.prefix);
  c.set_direction(proto::to_wire(d.direction));
  c.set_detector(d.detector);
  c.set_severity(proto::to_wire(d.severity));
  c.set_confidence(d.confidence);
  c.set_issued_at_ms(now);
  c.set_ttl_ms(ttl > 0 ? ttl : params.ttl_max_ms);
  auto* ctx = c.mutable_context();
  ctx->set_reason(d.reason);
  ctx->set_pod(d.identity.pod_name.empty() ? d.identity.pod_uid : d.identity.pod_name);
  ctx->set_pod_namespace(d.identity.pod_namespace);
  ctx->set_process(d.identity.container_id.empty() ? d.identity.cgroup_path
                                                   : d.identity.container_id);
  if (auto r = submit_local(proto::sign_claim(c, *key), now); !r) return std::unexpected(r.error());
  own_claims[d.prefix] = *seq;
  ++counters.local_claims;
  record_event(json{
      {"event", "claim_signed"},
      {"prefix", d.prefix.to_string()},
      {"seq", *seq},
      {"detector", d.detector},
      {"confidence", d.confidence},
      {"reason", d.reason},
      {"at", now},
      {"at_us",
       now_us}}.dump());
  return *seq;
}

Result<std::size_t> Daemon::Impl::retract_own(const Prefix& prefix, const std::string& reason) {
  const TimeMs now = wall_now_ms();
  // Only a claim this node signed and still holds can be retracted. The engine is asked, not
  // own_claims, so claims restored from the store after a restart count too.
  std::size_t held = 0;
  for (const auto& c : node->explain(prefix, now).claims)
    if (c.origin.node == node_id) ++held;
  if (held == 0)
    return fail("not_claimed",
                "this node holds no claim of its own on " + prefix.to_string() + " to retract");
  auto seq = store->next_sequence();
  if (!seq) {
    ++counters.store_errors;
    watch_store();
    return fail(seq.error().code, "no retraction signed: " + seq.error().message);
  }
  v1::Retraction r;
  r.set_origin(node_id);
  r.set_seq(*seq);
  *r.mutable_prefix() = proto::to_cidr(prefix);
  r.set_issued_at_ms(now);
  r.set_reason(reason);
  if (auto s = submit_local(proto::sign_retraction(r, *key), now); !s)
    return std::unexpected(s.error());
  own_claims.erase(prefix);
  claimed_at.erase(prefix);
  ++counters.local_retractions;
  record_event(json{
      {"event", "retraction_signed"},
      {"prefix", prefix.to_string()},
      {"seq", *seq},
      {"at", now}}.dump());
  return held;
}

Result<void> Daemon::Impl::submit_operator_decision(const v1::Envelope& env,
                                                    const v1::SignedCert& op_cert) {
  const TimeMs now = wall_now_ms();
  if (env.kind() != v1::BODY_KIND_OPERATOR_DECISION)
    return fail("bad_request", "the envelope does not hold an operator decision");
  auto learned = opener->learn_cert(op_cert, now);
  if (!learned) return fail("bad_operator_cert", learned.error().message);
  if (learned->role() != v1::ROLE_OPERATOR)
    return fail("bad_operator_cert",
                "cert of " + learned->node_id() + " does not have the operator role");
  v1::Envelope copy = env;
  if (!copy.has_signer_cert()) *copy.mutable_signer_cert() = op_cert;
  ++counters.operator_decisions_submitted;
  return submit_local(std::move(copy), now);
}

void Daemon::Impl::publish_proof(const core::ProofRequest& request, TimeMs now) {
  auto seq = store->next_sequence();
  if (!seq) {
    ++counters.store_errors;
    spdlog::error("cannot publish proof against {}: {}", request.accused, seq.error().message);
    return;
  }
  v1::MisbehaviourProof p;
  p.set_reporter(node_id);
  p.set_seq(*seq);
  p.set_accused(request.accused);
  p.set_kind(proto::to_wire(request.kind));
  p.set_issued_at_ms(now);
  p.set_detail(request.detail);
  for (const auto& e : request.evidence) {
    if (!p.add_evidence()->ParseFromString(*e)) {
      spdlog::error("proof against {}: evidence envelope does not parse", request.accused);
      return;
    }
  }
  spdlog::warn("misbehaviour by {}: {} ({}); publishing proof", request.accused,
               to_string(request.kind), request.detail);
  record_event(json{
      {"event", "misbehaviour_proof"},
      {"accused", request.accused},
      {"kind", std::string(to_string(request.kind))},
      {"detail", request.detail},
      {"at", now}}.dump());
  ++counters.proofs_published;
  if (auto r = submit_local(proto::sign_misbehaviour_proof(p, *key), now); !r)
    spdlog::error("own proof rejected: {}", r.error().message);
}

Daemon::Impl::DetectionOutcome Daemon::Impl::on_detection(const sensor::Detection& d) {
  ++counters.detections;
  const TimeMs now = wall_now_ms();
  // One claim per target per half TTL: detectors fire on every connect attempt.
  auto& last = claimed_at[d.prefix];
  if (last != 0 && now - last < params.ttl_max_ms / 2) {
    ++counters.detections_suppressed;
    return DetectionOutcome::suppressed;
  }
  last = now;  // a refused target is suppressed too: the refusal would repeat on every alert
  // Traffic to what this node itself detects is the threat's, not benign evidence against it.
  usage_stats.flag(d.prefix, now);
  spdlog::info("detection {}: {} ({})", d.detector, d.prefix.to_string(), d.reason);
  if (auto r = submit_claim(d, params.ttl_max_ms); !r) {
    ++counters.detections_refused;
    spdlog::warn("claim not issued: {}", r.error().message);
    // A claimed detection shows as claim_signed; a refused one would otherwise leave no trace.
    record_event(json{
        {"event", "detection_refused"},
        {"prefix", d.prefix.to_string()},
        {"detector", d.detector},
        {"reason", d.reason},
        {"why", r.error().message},
        {"at", now}}.dump());
    return DetectionOutcome::refused;
  }
  return DetectionOutcome::claimed;
}

Result<void> Daemon::Impl::start_falco() {
  const auto& where = config.sensor.falco_listen;
  auto hp = split_host_port(where);
  if (!hp) return fail("bad_config", "sensor.falco_listen: " + hp.error().message);
  boost::system::error_code ec;
  auto addr = boost::asio::ip::make_address(hp->first, ec);
  if (ec)
    return fail("bad_config", "sensor.falco_listen: '" + hp->first + "' is not an IP address");
  auto secret = load_token_file("sensor.falco_secret_file", config.sensor.falco_secret_file);
  if (!secret) return std::unexpected(secret.error());
  sensor::FalcoEndpointOptions options;
  options.secret = std::move(*secret);
  options.on_unauthorized = [this](const boost::asio::ip::tcp::endpoint& from,
                                   std::string_view why) { on_falco_unauthorized(from, why); };
  falco = std::make_unique<sensor::FalcoEndpoint>(
      io, boost::asio::ip::tcp::endpoint{addr, hp->second},
      [this](const sensor::FalcoAlert& a, const std::optional<sensor::Detection>& d) {
        on_falco_alert(a, d);
      },
      std::move(options));
  if (auto r = falco->start(); !r) return r;
  auto bound = falco->local_endpoint();
  spdlog::info("Falco alert endpoint listening on {}:{}", bound.address().to_string(),
               bound.port());
  return {};
}

// One log line per refused caller, at most one a second (the rest are counted in the line
// that follows and in meshd_falco_requests_rejected_total{reason="unauthorized"}).
void Daemon::Impl::on_falco_unauthorized(const boost::asio::ip::tcp::endpoint& from,
                                         std::string_view why) {
  const TimeMs now = wall_now_ms();
  if (now - falco_unauthorized_logged_at < 1000) {
    ++falco_unauthorized_unlogged;
    return;
  }
  spdlog::warn(
      "Falco endpoint: refused a request from {}:{} ({}; {} more refused since the last "
      "line)",
      from.address().to_string(), from.port(), why, falco_unauthorized_unlogged);
  falco_unauthorized_logged_at = now;
  falco_unauthorized_unlogged = 0;
}

// Runs on the io thread (the endpoint's connections live on strands of the daemon's
// single-threaded io_context), like every other input.
void Daemon::Impl::on_falco_alert(const sensor::FalcoAlert& alert,
                                  const std::optional<sensor::Detection>& detection) {
  if (stopping) return;
  if (!detection) {
    // Alerts about a process or file (no peer address) are evidence about the workload, not
    // about a destination: nothing to block.
    if (!alert.remote)
      ++counters.falco_no_address;
    else
      ++counters.falco_below_severity;
    spdlog::debug("Falco alert '{}' ({}) not claimed: {}", alert.rule, alert.priority,
                  alert.remote ? "below the minimum severity" : "no usable remote address");
    return;
  }
  switch (on_detection(*detection)) {
    case DetectionOutcome::claimed:
      ++counters.falco_claimed;
      break;
    case DetectionOutcome::suppressed:
      ++counters.falco_suppressed;
      break;
    case DetectionOutcome::refused:
      ++counters.falco_refused;
      break;
  }
}

void Daemon::Impl::drain_sensor() {
  auto* src = event_source();
  if (!src) return;
  std::vector<sensor::ConnectEvent> batch;
  while (src->poll(batch, 1024, 0) > 0) {
    for (const auto& ev : batch) {
      ++counters.sensor_events;
      usage_stats.record(ev);
      sensor::WorkloadIdentity who =
          pods ? pods->resolve(ev.cgroup_id, ev.at) : sensor::WorkloadIdentity{};
      for (auto& f : feeds)
        if (auto d = f->check(ev, who)) on_detection(*d);
      for (const auto& d : fanout->on_event(ev, who)) on_detection(d);
    }
    batch.clear();
  }
  schedule_sensor_recheck();
}

// The hooks wake the reader for the first event of a quiet period and then at most once
// per 10 ms, so events that follow a wakeup closely are found only by a later drain: the
// source says when one is due (-1: none, the fd's wakeup is enough). No periodic polling.
void Daemon::Impl::schedule_sensor_recheck() {
  auto* src = event_source();
  if (!src || stopping) return;
  const int due_ms = src->next_drain_in_ms();
  if (due_ms < 0) return;
  sensor_timer.expires_after(std::chrono::milliseconds(due_ms));
  sensor_timer.async_wait([this](const boost::system::error_code& ec) {
    if (!ec && !stopping) drain_sensor();
  });
}

void Daemon::Impl::on_sensor_readable() {
  if (!sensor_fd || stopping) return;
  sensor_fd->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                        [this](const boost::system::error_code& ec) {
                          if (ec || stopping) return;
                          drain_sensor();
                          on_sensor_readable();
                        });
}

}  // namespace meshd::app
