// Events this node signs: claims from its detectors and `meshctl block add`, retractions
// from `meshctl block del`, misbehaviour proofs the core asks for, and operator decisions
// relayed from meshctl (already signed by the operator key).
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "meshd/app/daemon_impl.hpp"
#include "proto/envelope.hpp"
#include "sensor/bpf_ringbuf.hpp"

namespace meshd::app {

using nlohmann::json;

namespace {

v1::Severity wire_severity(sensor::Severity s) {
  switch (s) {
    case sensor::Severity::info:
    case sensor::Severity::low:
      return v1::SEVERITY_LOW;
    case sensor::Severity::medium:
      return v1::SEVERITY_MEDIUM;
    case sensor::Severity::high:
      return v1::SEVERITY_HIGH;
    case sensor::Severity::critical:
      return v1::SEVERITY_CRITICAL;
  }
  return v1::SEVERITY_MEDIUM;
}

v1::MisbehaviourKind wire_kind(trust::MisbehaviourKind k) {
  switch (k) {
    case trust::MisbehaviourKind::equivocation:
      return v1::MISBEHAVIOUR_KIND_EQUIVOCATION;
    case trust::MisbehaviourKind::protected_target:
      return v1::MISBEHAVIOUR_KIND_PROTECTED_TARGET;
    case trust::MisbehaviourKind::budget_overrun:
      return v1::MISBEHAVIOUR_KIND_BUDGET_OVERRUN;
  }
  return v1::MISBEHAVIOUR_KIND_UNSPECIFIED;
}

}  // namespace

Result<void> Daemon::Impl::submit_local(v1::Envelope env, trust::TimeMs now) {
  if (!env.has_signer_cert()) *env.mutable_signer_cert() = cert;
  actions.clear();
  auto r = node->on_local_event(core::make_envelope(env.SerializeAsString()), now, actions);
  apply_actions(now);
  return r;
}

Result<std::uint64_t> Daemon::Impl::submit_claim(const sensor::Detection& d,
                                                 trust::DurationMs ttl) {
  const trust::TimeMs now = wall_now_ms();
  auto seq = store->next_sequence();  // durable before signing: a crash never reuses it
  if (!seq) return std::unexpected(seq.error());
  v1::Claim c;
  c.set_origin(node_id);
  c.set_seq(*seq);
  *c.mutable_target() = proto::to_cidr(d.prefix);
  c.set_direction(proto::to_wire(d.direction));
  c.set_detector(d.detector);
  c.set_severity(wire_severity(d.severity));
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
      {"at", now}}.dump());
  return *seq;
}

Result<std::size_t> Daemon::Impl::retract_own(const trust::Prefix& prefix,
                                              const std::string& reason) {
  const trust::TimeMs now = wall_now_ms();
  auto seq = store->next_sequence();
  if (!seq) return std::unexpected(seq.error());
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
  return 1;
}

Result<void> Daemon::Impl::submit_operator_decision(const v1::Envelope& env,
                                                    const v1::SignedCert& op_cert) {
  const trust::TimeMs now = wall_now_ms();
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

void Daemon::Impl::publish_proof(const core::ProofRequest& request, trust::TimeMs now) {
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
  p.set_kind(wire_kind(request.kind));
  p.set_issued_at_ms(now);
  p.set_detail(request.detail);
  for (const auto& e : request.evidence) {
    if (!p.add_evidence()->ParseFromString(*e)) {
      spdlog::error("proof against {}: evidence envelope does not parse", request.accused);
      return;
    }
  }
  spdlog::warn("misbehaviour by {}: {} ({}); publishing proof", request.accused,
               trust::to_string(request.kind), request.detail);
  record_event(json{
      {"event", "misbehaviour_proof"},
      {"accused", request.accused},
      {"kind", std::string(trust::to_string(request.kind))},
      {"detail", request.detail},
      {"at", now}}.dump());
  ++counters.proofs_published;
  if (auto r = submit_local(proto::sign_misbehaviour_proof(p, *key), now); !r)
    spdlog::error("own proof rejected: {}", r.error().message);
}

void Daemon::Impl::on_detection(const sensor::Detection& d) {
  ++counters.detections;
  const trust::TimeMs now = wall_now_ms();
  // One claim per target per half TTL: detectors fire on every connect attempt.
  auto& last = claimed_at[d.prefix];
  if (last != 0 && now - last < params.ttl_max_ms / 2) {
    ++counters.detections_suppressed;
    return;
  }
  last = now;
  spdlog::info("detection {}: {} ({})", d.detector, d.prefix.to_string(), d.reason);
  if (auto r = submit_claim(d, params.ttl_max_ms); !r)
    spdlog::error("claim not issued: {}", r.error().message);
}

// The ring buffer wakes readers only after 64 KiB of unread records (cheap for busy hosts),
// so a short timer drains it too: detection latency stays under sensor_poll_ms.
constexpr int kSensorPollMs = 20;

void Daemon::Impl::drain_sensor() {
  auto* src = enforcement->events();
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

void Daemon::Impl::sensor_poll_loop() {
  if (stopping || !enforcement->events()) return;
  drain_sensor();
  sensor_timer.expires_after(std::chrono::milliseconds(kSensorPollMs));
  sensor_timer.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) sensor_poll_loop();
  });
}

}  // namespace meshd::app
