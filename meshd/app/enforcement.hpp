// Chooses and owns the enforcement backend (and, with bpf, the loaded programs and the
// connect sensor's ring buffer), and turns the engine's block changes into enforcer calls.
//
// Backend selection for `enforcement.backend: auto`: bpf if the programs load and attach,
// else nftables if the table can be created, else dryrun; each fallback is logged with the
// reason. An explicit backend that cannot start is a start-up error.
//
// What the backends leave in the kernel when the daemon exits (SIGTERM, crash, upgrade):
// bpf keeps its programs attached (pinned links and clsact filters, sensor/bpf_loader.hpp)
// and its maps pinned; nftables keeps its table. Blocks expire in the kernel on their own,
// and the next start takes everything over. detach_enforcement() removes it all
// (`meshd --detach`, for uninstalling).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "meshd/app/config.hpp"
#include "meshd/common/result.hpp"
#include "sensor/enforcer.hpp"
#include "sensor/events.hpp"
#include "trust/engine.hpp"

namespace meshd::sensor {
class BpfLoader;
}  // namespace meshd::sensor

namespace meshd::app {

struct EnforcementResult {
  std::size_t applied = 0;
  std::size_t removed = 0;
  std::vector<Error> errors;  // refused rules and backend errors, one per problem
};

class Enforcement {
 public:
  static Result<std::unique_ptr<Enforcement>> create(const AppConfig& config);
  ~Enforcement();

  std::string_view backend() const { return enforcer_->name(); }
  sensor::Enforcer& enforcer() { return *enforcer_; }
  const sensor::Enforcer& enforcer() const { return *enforcer_; }
  // The connect sensor (bpf backend with cgroup hooks only), else null.
  sensor::EventSource* events() { return events_.get(); }
  // What was attached where ("bpf: connect4 -> /sys/fs/cgroup (cgroup link); ...").
  const std::string& description() const { return description_; }
  // The cgroup v2 directory the connect hooks are attached to ("" if none).
  const std::string& cgroup_path() const { return cgroup_path_; }
  // Non-empty when `backend: auto` found no backend that enforces (bpf and nftables both
  // failed) and fell back to dryrun: why, for /healthz and the log. A node that was asked to
  // enforce and cannot must not look ready. An explicit `backend: dryrun` leaves it empty.
  const std::string& not_enforcing() const { return not_enforcing_; }

  // Applies the engine's changes in order: enforce/retime are installed, lift removed.
  EnforcementResult apply(const std::vector<trust::BlockChange>& changes, TimeMs now);
  // Makes the kernel state equal to `blocks` (start-up reconciliation): installs what is
  // missing or re-timed, removes rules this backend created that the engine no longer holds.
  EnforcementResult reconcile(const std::vector<trust::EnforcedBlock>& blocks, TimeMs now);
  // Drops expired entries where the backend keeps them (bpf); the number dropped.
  Result<std::size_t> prune();
  // The enforcer's own refusal list (defence in depth): `list` plus trust's built-ins.
  void set_protected(const std::vector<trust::ProtectedPrefix>& list);

 private:
  Enforcement() = default;
  std::unique_ptr<sensor::BpfLoader> loader_;
  std::unique_ptr<sensor::EventSource> events_;
  std::unique_ptr<sensor::Enforcer> enforcer_;
  std::string description_;
  std::string cgroup_path_;
  std::string not_enforcing_;
};

// Stable rule id of a prefix (shown in kernel counters and explain): FNV-1a of its text.
std::uint64_t rule_id_of(const Prefix& prefix);

// Protected prefixes of this node: `protected` from the config (fleet-wide: claiming them is
// provable misbehaviour) plus node-local critical addresses (own interface addresses, the
// default gateways, DNS servers from /etc/resolv.conf, the Kubernetes API service). The
// engine adds loopback and link-local itself.
std::vector<trust::ProtectedPrefix> node_protected_prefixes(const AppConfig& config);

// `meshd --detach`: removes what the configured backend keeps in the kernel across daemon
// restarts: with bpf (or auto) the pinned links, clsact filters and maps under
// enforcement.pin_path, with nftables (or auto) the table enforcement.nft_table if it is
// meshd's. Nothing to remove is not an error. A meshd still answering on control_socket is
// warned about (it keeps running with nothing attached). Returns a one-line summary;
// errors name every part that could not be removed.
Result<std::string> detach_enforcement(const AppConfig& config);

}  // namespace meshd::app
