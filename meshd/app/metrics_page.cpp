// /metrics: every component's counters in Prometheus text format. Names are prefixed
// meshd_; counters end in _total; labels carry reasons.
#include <malloc.h>
#include <sqlite3.h>
#include <unistd.h>

#include <fstream>

#include "meshd/app/daemon_impl.hpp"
#include "meshd/app/metrics.hpp"
#include "meshd/app/protobuf_log.hpp"

namespace meshd::app {

namespace {

double resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE));
}

}  // namespace

std::string Daemon::Impl::metrics_text() const {
  MetricsWriter w;
  const TimeMs now = wall_now_ms();
  w.gauge("meshd_up", "1 while the daemon runs.", 1);
  w.gauge("meshd_uptime_seconds", "Seconds since start.",
          static_cast<double>(now - started_at) / 1000.0);
  w.gauge("meshd_resident_memory_bytes", "Resident set size.", resident_bytes());
  // Where the anonymous part of the RSS goes: live allocations, freed memory malloc keeps
  // (fragmentation), and SQLite's own share of the live allocations (its page cache).
  const struct mallinfo2 mi = ::mallinfo2();
  w.family("meshd_heap_bytes", "gauge", "malloc heap (main arena and mmapped chunks) by state.");
  w.sample("meshd_heap_bytes", static_cast<double>(mi.uordblks + mi.hblkhd), {{"state", "in_use"}});
  w.sample("meshd_heap_bytes", static_cast<double>(mi.fordblks), {{"state", "free"}});
  w.gauge("meshd_sqlite_memory_bytes", "Memory SQLite has allocated (page cache included).",
          static_cast<double>(::sqlite3_memory_used()));

  const auto& e = node->engine_stats();
  w.counter("meshd_claims_received_total", "Claims given to the acceptance engine.",
            e.claims_received);
  w.counter("meshd_claims_accepted_total", "Claims accepted by the acceptance engine.",
            e.claims_accepted);
  w.family("meshd_claims_rejected_total", "counter",
           "Claims refused by the acceptance engine, by reason.");
  w.sample("meshd_claims_rejected_total", e.rejected_bad_input, {{"reason", "bad_input"}});
  w.sample("meshd_claims_rejected_total", e.rejected_future, {{"reason", "future"}});
  w.sample("meshd_claims_rejected_total", e.rejected_expired, {{"reason", "expired"}});
  w.sample("meshd_claims_rejected_total", e.rejected_quarantined, {{"reason", "quarantined"}});
  w.sample("meshd_claims_rejected_total", e.rejected_protected, {{"reason", "protected"}});
  w.counter("meshd_misbehaviour_detected_total", "Misbehaviour detected by this node.",
            e.misbehaviour_detected);
  w.counter("meshd_proofs_applied_total", "Misbehaviour proofs applied (origins quarantined).",
            e.proofs_applied);
  w.counter("meshd_retractions_total", "Retractions applied.", e.retractions);
  w.counter("meshd_operator_decisions_total", "Operator decisions applied.", e.operator_decisions);
  w.counter("meshd_blocks_enforced_total", "Blocks started.", e.blocks_enforced);
  w.counter("meshd_blocks_lifted_total", "Blocks lifted.", e.blocks_lifted);
  w.counter("meshd_budget_deferrals_total", "Blocks that waited for an origin's budget.",
            e.budget_deferrals);
  w.counter(
      "meshd_claims_contradicted_total",
      "Claims on targets this node has strong benign evidence for (their origins lost trust).",
      e.contradictions);
  w.counter("meshd_decisions_domains_short_total",
            "Decisions refused because fewer failure domains backed them than the local benign "
            "evidence demands.",
            e.domains_short);
  w.counter("meshd_usage_recheck_rounds_total",
            "Usage buckets after which claims on destinations whose usage moved were re-checked.",
            counters.usage_recheck_rounds);
  w.counter("meshd_usage_rechecked_destinations_total",
            "Destinations whose claims were re-checked against new usage evidence.",
            counters.usage_rechecked_destinations);
  w.counter("meshd_usage_full_rechecks_total",
            "Usage re-check rounds that covered every target (more destinations moved than are "
            "tracked one by one).",
            counters.usage_full_rechecks);
  w.gauge("meshd_usage_addresses", "Destinations the usage statistics track.",
          usage_stats.counters().addresses);
  w.gauge("meshd_active_claims", "Claims currently held by the engine.", e.active_claims);
  w.gauge("meshd_blocks_active", "Blocks currently enforced.", e.active_blocks);
  w.gauge("meshd_blocks_pending", "Blocks waiting for budget.", e.pending_blocks);

  const auto& c = node->stats();
  w.counter("meshd_gossip_messages_received_total", "Gossip messages received from peers.",
            c.messages_received);
  w.counter("meshd_gossip_events_new_total", "Distinct valid events learned.", c.events_new);
  w.counter("meshd_gossip_duplicates_total", "Events already known.", c.duplicates);
  w.counter("meshd_gossip_forwarded_total", "Pushes sent to peers.", c.forwarded);
  w.family("meshd_gossip_dropped_total", "counter", "Gossip input dropped, by reason.");
  w.sample("meshd_gossip_dropped_total", c.invalid, {{"reason", "invalid_signature_or_signer"}});
  w.sample("meshd_gossip_dropped_total", c.malformed, {{"reason", "malformed"}});
  w.sample("meshd_gossip_dropped_total", c.stale, {{"reason", "stale"}});
  w.sample("meshd_gossip_dropped_total", c.rejected, {{"reason", "rejected"}});
  w.sample("meshd_gossip_dropped_total", c.rate_limited_peer, {{"reason", "peer_rate_limit"}});
  w.sample("meshd_gossip_dropped_total", c.origin_dropped, {{"reason", "origin_rate_limit"}});
  w.sample("meshd_gossip_dropped_total", c.from_quarantined, {{"reason", "quarantined_origin"}});
  w.counter("meshd_gossip_dropped_unopened_total",
            "Of the origin_rate_limit drops, those shed before the signature check (the "
            "origin's queue was full).",
            c.origin_dropped_unopened);
  w.gauge("meshd_push_intake", "Pushed events waiting for their signature check.",
          static_cast<double>(intake.size()));
  w.counter("meshd_push_intake_copies_total",
            "Pushes dropped as copies of an event already waiting in the intake.",
            counters.intake_copies);
  w.counter("meshd_push_intake_full_total",
            "Pushes opened at once, in arrival order, because the intake was full.",
            counters.intake_full);
  w.counter("meshd_equivocations_total", "Equivocations detected.", c.equivocations);
  w.counter("meshd_proofs_received_total", "Misbehaviour proofs received.", c.proofs_received);
  w.counter("meshd_proofs_invalid_total", "Misbehaviour proofs that did not verify.",
            c.proofs_invalid);
  w.counter("meshd_sync_requests_sent_total", "Anti-entropy range requests sent.", c.requests_sent);
  w.counter("meshd_sync_envelopes_served_total", "Envelopes served by anti-entropy.",
            c.envelopes_served);
  w.counter("meshd_peer_disconnects_total", "Peers disconnected for their score.", c.disconnects);
  w.gauge("meshd_store_envelopes", "Envelopes held to serve anti-entropy.", c.store_size);
  w.counter("meshd_store_envelopes_missing_total",
            "Held envelopes the store could not read back (not served).", c.archive_misses);

  const auto& t = transport->stats();
  w.gauge("meshd_peers", "Connected, authenticated peers.",
          static_cast<double>(transport->peers().size()));
  w.counter("meshd_handshakes_ok_total", "Completed handshakes.", t.handshakes_ok);
  w.family("meshd_handshakes_failed_total", "counter",
           "Failed handshakes and refused certificates, by reason.");
  for (std::size_t i = 0; i < t.handshakes_failed.size(); ++i)
    w.sample("meshd_handshakes_failed_total", t.handshakes_failed[i],
             {{"reason", std::string(net::to_string(static_cast<net::HandshakeFailure>(i)))}});
  w.family("meshd_frames_rejected_total", "counter",
           "Peer frames rejected by the transport or decoder, by reason.");
  w.sample("meshd_frames_rejected_total", t.oversize_frames, {{"reason", "frame_too_large"}});
  w.sample("meshd_frames_rejected_total", t.decrypt_failures, {{"reason", "decrypt_failed"}});
  w.sample("meshd_frames_rejected_total", t.protocol_errors, {{"reason", "protocol_error"}});
  w.sample("meshd_frames_rejected_total", t.rate_limit_drops, {{"reason", "rate_limit"}});
  w.sample("meshd_frames_rejected_total", counters.frames_malformed, {{"reason", "undecodable"}});
  w.counter("meshd_idle_timeouts_total", "Connections closed for silence.", t.idle_timeouts);
  w.family("meshd_connections_refused_total", "counter",
           "Inbound peer connections refused before their handshake, by reason.");
  w.sample("meshd_connections_refused_total", t.refused_max_peers, {{"reason", "max_peers"}});
  w.sample("meshd_connections_refused_total", t.refused_per_address,
           {{"reason", "handshaking_per_address"}});
  w.counter("meshd_send_queue_overflows_total",
            "Peers dropped because their send queue exceeded its limit (they resync).",
            t.send_queue_overflows);
  w.family("meshd_dials_total", "counter",
           "Outbound peer connections by how they ended (up = handshake done).");
  for (std::size_t i = 0; i < t.dial_outcomes.size(); ++i)
    w.sample("meshd_dials_total", t.dial_outcomes[i],
             {{"outcome", std::string(net::to_string(static_cast<net::DialOutcome>(i)))}});
  w.counter("meshd_duplicate_connections_total",
            "Connections closed by the one-connection-per-node rule (both dialed each other).",
            t.duplicate_connections);
  w.family("meshd_peer_exchange_total", "counter",
           "Peer exchange frames and redirects (meshd/net/peer_exchange.hpp), by what happened.");
  for (const auto& [what, n] :
       {std::pair{"sent", t.pex_sent}, std::pair{"received", t.pex_received},
        std::pair{"rejected", t.pex_rejected}, std::pair{"redirects_sent", t.redirects_sent},
        std::pair{"redirects_received", t.redirects_received}})
    w.sample("meshd_peer_exchange_total", n, {{"event", what}});
  w.family("meshd_trim_total", "counter",
           "Surplus links dropped by agreement (TransportLimits::trim_surplus), by what happened.");
  for (const auto& [what, n] :
       {std::pair{"requested", t.trim_requests_sent}, std::pair{"granted", t.trim_requests_granted},
        std::pair{"refused", t.trim_requests_refused},
        std::pair{"refusals_received", t.trim_refusals_received}, std::pair{"dropped", t.trims},
        std::pair{"rejected", t.trim_rejected}})
    w.sample("meshd_trim_total", n, {{"event", what}});
  w.counter("meshd_peer_addresses_learned_total",
            "Peer addresses learned from other peers (candidates for dialing).",
            t.pex_addresses_learned);
  w.counter("meshd_frames_in_total", "Frames received.", t.frames_in);
  w.counter("meshd_frames_out_total", "Frames sent.", t.frames_out);

  const auto& o = opener->stats();
  w.counter("meshd_envelopes_verified_total", "Envelopes whose signature and signer verified.",
            o.opened);
  w.family("meshd_envelopes_refused_total", "counter",
           "Envelopes refused by the verifier, by reason.");
  w.sample("meshd_envelopes_refused_total", o.malformed, {{"reason", "malformed"}});
  w.sample("meshd_envelopes_refused_total", o.bad_signature, {{"reason", "bad_signature"}});
  w.sample("meshd_envelopes_refused_total", o.unknown_signer, {{"reason", "unknown_signer"}});
  w.sample("meshd_envelopes_refused_total", o.stale, {{"reason", "stale"}});

  const auto es = enforcement->enforcer().stats();
  w.family("meshd_enforcer_info", "gauge", "Enforcement backend in use.");
  w.sample("meshd_enforcer_info", 1, {{"backend", std::string(enforcement->backend())}});
  w.gauge("meshd_enforcer_rules", "Rules installed in the backend.", es.active_rules);
  w.counter("meshd_packets_dropped_total", "Packets dropped by XDP/TC/nftables.",
            es.packets_dropped);
  w.counter("meshd_connects_denied_total", "connect()/sendmsg() calls denied with EPERM.",
            es.connects_denied);
  w.counter("meshd_enforcer_refused_total", "Rules the backend refused (protected or invalid).",
            counters.enforcer_refused);

  w.counter("meshd_local_claims_total", "Claims this node signed.", counters.local_claims);
  w.counter("meshd_local_retractions_total", "Retractions this node signed.",
            counters.local_retractions);
  w.counter("meshd_proofs_published_total", "Misbehaviour proofs this node signed.",
            counters.proofs_published);
  w.counter("meshd_detections_total", "Detections from the sensor's detectors.",
            counters.detections);
  w.counter("meshd_sensor_events_total", "Connect events read from the ring buffer.",
            counters.sensor_events);
  w.counter("meshd_detections_suppressed_total",
            "Detections not claimed again: the target was claimed within ttl_max / 2.",
            counters.detections_suppressed);
  w.counter("meshd_detections_refused_total",
            "Detections no claim was signed for (protected target, store error).",
            counters.detections_refused);

  const auto fs = falco ? falco->stats() : sensor::FalcoEndpointStats{};
  w.counter("meshd_falco_requests_total", "HTTP requests to the Falco alert endpoint.",
            fs.requests);
  w.family("meshd_falco_alerts_total", "counter",
           "Falco alerts by outcome: claimed, suppressed (claimed recently), refused (protected "
           "target or store error), no_address and below_severity (nothing to claim), invalid "
           "(answered 400).");
  w.sample("meshd_falco_alerts_total", counters.falco_claimed, {{"result", "claimed"}});
  w.sample("meshd_falco_alerts_total", counters.falco_suppressed, {{"result", "suppressed"}});
  w.sample("meshd_falco_alerts_total", counters.falco_refused, {{"result", "refused"}});
  w.sample("meshd_falco_alerts_total", counters.falco_no_address, {{"result", "no_address"}});
  w.sample("meshd_falco_alerts_total", counters.falco_below_severity,
           {{"result", "below_severity"}});
  w.sample("meshd_falco_alerts_total", fs.bad_alert, {{"result", "invalid"}});
  w.family("meshd_falco_requests_rejected_total", "counter",
           "Falco endpoint requests or connections refused before parsing, by reason.");
  w.sample("meshd_falco_requests_rejected_total", fs.bad_method, {{"reason", "method"}});
  w.sample("meshd_falco_requests_rejected_total", fs.too_large, {{"reason", "too_large"}});
  w.sample("meshd_falco_requests_rejected_total", fs.unauthorized, {{"reason", "unauthorized"}});
  w.sample("meshd_falco_requests_rejected_total", fs.rejected_connections,
           {{"reason", "connection_limit"}});
  w.counter("meshd_falco_alert_warnings_total",
            "Unusable optional fields in accepted Falco alerts (e.g. a malformed fd.rip).",
            fs.warnings);
  w.counter("meshd_store_errors_total", "Store reads and writes that failed.",
            counters.store_errors);
  w.family("meshd_store_checkpoints_total", "counter",
           "WAL checkpoints, by who ran them: the store's checkpoint thread, or the writer "
           "itself when the WAL outgrew the thread (a burst of writes).");
  w.sample("meshd_store_checkpoints_total", store->checkpoints(), {{"by", "thread"}});
  w.sample("meshd_store_checkpoints_total", store->writer_checkpoints(), {{"by", "writer"}});
  w.counter("meshd_store_checkpoint_failures_total",
            "WAL checkpoints that failed (disk full, I/O error): the WAL grows until one works.",
            store->checkpoint_failures());
  w.counter("meshd_enforcer_errors_total",
            "Enforcement backend operations that failed (e.g. pruning expired map entries).",
            counters.enforcer_errors);
  w.gauge("meshd_store_writable",
          "1 while the store takes writes; 0 while it is read-only or its last write failed "
          "(no claim is signed then; received claims are enforced but not recorded).",
          store->writable() ? 1 : 0);
  w.counter("meshd_control_requests_total", "Control API requests.", counters.control_requests);
  w.counter("meshd_control_errors_total", "Control API requests answered with an error.",
            counters.control_errors);
  w.counter("meshd_control_bad_requests_total",
            "Control connections closed for an undecodable or oversized request.",
            control ? control->stats().bad_requests : 0);
  w.counter("meshd_config_reloads_total", "Successful SIGHUP reloads.", counters.reloads);
  w.counter("meshd_config_reload_failures_total", "Rejected SIGHUP reloads.",
            counters.reload_failures);
  const ProtobufLogStats pb = protobuf_log_stats();
  w.family("meshd_protobuf_log_messages_total", "counter",
           "libprotobuf's own log messages (e.g. invalid UTF-8 in a peer's string field), by "
           "whether they were logged or held back by the rate limit.");
  w.sample("meshd_protobuf_log_messages_total", static_cast<double>(pb.logged),
           {{"result", "logged"}});
  w.sample("meshd_protobuf_log_messages_total", static_cast<double>(pb.suppressed),
           {{"result", "suppressed"}});
  append_observability_metrics(*this, w);  // observability.cpp
  crowdsec_metrics(w);
  return w.text();
}

}  // namespace meshd::app
