// The engine's inputs outside the gossip path, and its state, read-only. A driver reaches the
// engine only through these, so each call ends like every other Node input: block changes in
// Actions::blocks and the deadline, the engine's included, in Actions::next_deadline.
#include "meshd/core/detail/node_impl.hpp"
#include "meshd/core/node.hpp"

namespace meshd::core {

void Node::register_origin(const trust::NodeId& node, const trust::DomainId& domain, TimeMs now,
                           Actions& out) {
  impl_->engine.register_origin(node, domain, now);
  impl_->engine_input_done(out);
}

void Node::set_protected(std::vector<trust::ProtectedPrefix> list, TimeMs now, Actions& out) {
  append(out.blocks, impl_->engine.set_protected(std::move(list), now));
  impl_->engine_input_done(out);
}

Result<void> Node::set_params(const trust::Params& params, TimeMs now, Actions& out) {
  auto changes = impl_->engine.set_params(params, now);
  if (!changes) return std::unexpected(changes.error());
  append(out.blocks, std::move(*changes));
  impl_->engine_input_done(out);
  return {};
}

void Node::restore_ledger(trust::TrustLedger ledger, TimeMs now, Actions& out) {
  append(out.blocks, impl_->engine.restore_ledger(std::move(ledger), now));
  impl_->engine_input_done(out);
}

void Node::on_local_corroboration(const Prefix& prefix, TimeMs now, Actions& out) {
  append(out.blocks, impl_->engine.on_local_corroboration(prefix, now));
  impl_->engine_input_done(out);
}

void Node::on_local_contradiction(const Prefix& prefix, TimeMs now, Actions& out) {
  append(out.blocks, impl_->engine.on_local_contradiction(prefix, now));
  impl_->engine_input_done(out);
}

void Node::on_usage_changed(const Prefix& prefix, TimeMs now, Actions& out) {
  append(out.blocks, impl_->engine.on_usage_changed(prefix, now));
  impl_->engine_input_done(out);
}

void Node::recheck_usage(TimeMs now, Actions& out) {
  append(out.blocks, impl_->engine.recheck_usage(now));
  impl_->engine_input_done(out);
}

trust::Decision Node::decide(const Prefix& prefix, TimeMs now) const {
  return impl_->engine.decide(prefix, now);
}

trust::Explanation Node::explain(const Prefix& prefix, TimeMs now) const {
  return impl_->engine.explain(prefix, now);
}

std::vector<trust::Explanation> Node::explain_overlapping(const Prefix& prefix, TimeMs now) const {
  return impl_->engine.explain_overlapping(prefix, now);
}

std::vector<trust::EnforcedBlock> Node::enforced() const {
  return impl_->engine.enforced();
}

std::optional<trust::EnforcedBlock> Node::enforced(const Prefix& prefix) const {
  return impl_->engine.enforced(prefix);
}

const trust::TrustLedger& Node::ledger() const {
  return impl_->engine.ledger();
}

const trust::EngineStats& Node::engine_stats() const {
  return impl_->engine.stats();
}

}  // namespace meshd::core
