// Misbehaviour: verifying received proofs, quarantining, and scheduling our own proofs.
#include <algorithm>
#include <utility>

#include "meshd/core/detail/node_impl.hpp"

namespace meshd::core {
namespace {

// A proof's evidence is bounded: an overrun proof needs overrun_max_claims + 1 claims.
constexpr std::size_t kMaxEvidence = 4096;

}  // namespace

Result<trust::Origin> Node::Impl::verify_proof(const ProofBody& proof, TimeMs now) {
  if (proof.accused.empty()) return fail("bad_proof", "misbehaviour proof names no accused");
  if (proof.evidence.empty() || proof.evidence.size() > kMaxEvidence) {
    return fail("bad_proof", "misbehaviour proof against " + proof.accused + " carries " +
                                 std::to_string(proof.evidence.size()) +
                                 " evidence envelopes (1.." + std::to_string(kMaxEvidence) + ")");
  }
  std::vector<SignedEvent> evs;
  evs.reserve(proof.evidence.size());
  for (std::size_t i = 0; i < proof.evidence.size(); ++i) {
    const Envelope& env = proof.evidence[i];
    if (!env) return fail("bad_proof", "evidence " + std::to_string(i) + " is empty");
    auto ev = opener.open_evidence(*env, now);
    if (!ev) {
      return fail("bad_proof", "evidence " + std::to_string(i) + " against " + proof.accused +
                                   " does not open: " + ev.error().message);
    }
    if (ev->origin.node != proof.accused) {
      return fail("bad_proof", "evidence " + std::to_string(i) + " is signed by " +
                                   ev->origin.node + ", not by the accused " + proof.accused);
    }
    evs.push_back(std::move(*ev));
  }
  if (proof.kind == MisbehaviourKind::equivocation) {
    // Checked here rather than by the engine so that it covers every kind of event.
    if (evs.size() != 2 || evs[0].seq != evs[1].seq || evs[0].body_digest == evs[1].body_digest) {
      return fail("bad_proof", "equivocation proof against " + proof.accused +
                                   " needs two different bodies under one seq");
    }
    return evs[0].origin;
  }
  trust::MisbehaviourRecord rec;
  rec.kind = proof.kind;
  rec.origin = evs[0].origin;
  rec.detected_at = now;
  rec.reason = proof.detail;
  rec.claims.reserve(evs.size());
  for (const SignedEvent& ev : evs) {
    const auto* facts = std::get_if<trust::ClaimFacts>(&ev.body);
    if (facts == nullptr) {
      return fail("bad_proof", std::string(to_string(proof.kind)) + " proof against " +
                                   proof.accused + " holds a " + std::string(to_string(ev.kind)) +
                                   ", only claims count");
    }
    rec.claims.push_back(trust::OffendingClaim{*facts, ev.body_digest});
  }
  if (auto ok = engine.check_misbehaviour(rec); !ok) return std::unexpected(ok.error());
  return rec.origin;
}

void Node::Impl::on_proof(PeerState* from, const EventId& id, const Envelope& env,
                          const SignedEvent& ev, std::uint32_t oi, Source src, TimeMs now,
                          Actions& out) {
  ++stats.proofs_received;
  auto accused = verify_proof(std::get<ProofBody>(ev.body), now);
  if (!accused) {
    // Not forwarded. Not the forwarder's fault either: protected lists and budgets may
    // differ between nodes. The seq is decided, so it is held.
    ++stats.proofs_invalid;
    mark_held(origins[oi], ev.seq);
    return;
  }
  ++stats.proofs_valid;
  engine_dirty = true;
  engine.register_origin(accused->node, accused->domain, now);
  const std::uint32_t ai = intern(accused->node);
  if (origins[ai].quarantined_until <= now) quarantine(ai, now, out);
  origins[ai].ext().proved_until = now + engine.params().quarantine_ms;
  accept(from, id, env, ev, oi, src, now, out);
}

void Node::Impl::quarantine(std::uint32_t oi, TimeMs now, Actions& out) {
  engine_dirty = true;
  append(out.blocks, engine.apply_proof(origins[oi].id, now));
  origins[oi].quarantined_until = now + engine.params().quarantine_ms;
  ++stats.quarantines;
}

void Node::Impl::detected(std::uint32_t accused, MisbehaviourKind kind,
                          std::vector<Envelope> evidence, std::string detail,
                          bool engine_quarantined, TimeMs now, Actions& out) {
  if (engine_quarantined) {
    origins[accused].quarantined_until = now + engine.params().quarantine_ms;
    ++stats.quarantines;
  } else if (origins[accused].quarantined_until <= now) {
    quarantine(accused, now, out);
  }
  OriginState& o = origins[accused];
  if (o.proved_until() > now) return;  // the fleet already has a proof
  o.ext();
  if (o.extra->pending_proof) return;  // ours is already scheduled
  o.extra->pending_proof = ProofRequest{o.id, kind, std::move(evidence), std::move(detail)};
  o.extra->proof_due =
      now +
      static_cast<TimeMs>(rng.next_u64() % static_cast<std::uint64_t>(config.proof_jitter_ms + 1));
  proof_origins.push_back(accused);
}

void Node::Impl::on_engine_misbehaviour(const trust::MisbehaviourRecord& rec,
                                        const Envelope& current, const SignedEvent& ev, TimeMs now,
                                        Actions& out) {
  if (rec.kind == MisbehaviourKind::equivocation) ++stats.equivocations;
  const std::uint32_t ai = intern(rec.origin.node);
  // The engine names claims by (seq, digest); the signed envelopes are the current one and
  // what the store holds.
  std::vector<Envelope> evidence;
  evidence.reserve(rec.claims.size());
  bool complete = true;
  for (const trust::OffendingClaim& c : rec.claims) {
    if (c.facts.seq == ev.seq && c.digest == ev.body_digest) {
      evidence.push_back(current);
      continue;
    }
    const StoredEvent* s = find_stored(origins[ai], c.facts.seq);
    Envelope stored = s != nullptr ? envelope_of(origins[ai], *s) : nullptr;
    if (!stored) {
      complete = false;
      break;
    }
    evidence.push_back(std::move(stored));
  }
  if (!complete || evidence.empty()) {
    // Quarantined here all the same; other nodes detect it from their own copies.
    ++stats.proofs_unbuildable;
    origins[ai].quarantined_until = now + engine.params().quarantine_ms;
    ++stats.quarantines;
    return;
  }
  detected(ai, rec.kind, std::move(evidence), rec.reason, true, now, out);
}

void Node::Impl::run_proofs(TimeMs now, Actions& out) {
  for (std::size_t k = 0; k < proof_origins.size();) {
    OriginState& o = origins[proof_origins[k]];
    if (o.extra->proof_due > now) {
      ++k;
      continue;
    }
    if (o.proved_until() > now) {
      ++stats.proofs_suppressed;  // someone else's proof arrived first
    } else {
      out.proofs.push_back(std::move(*o.extra->pending_proof));
      ++stats.proofs_requested;
    }
    o.extra->pending_proof.reset();
    proof_origins[k] = proof_origins.back();
    proof_origins.pop_back();
  }
}

}  // namespace meshd::core
