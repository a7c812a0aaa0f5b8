// A real CrowdSec Local API (Debian's `crowdsec`, run with -no-cs: the API alone) inside a
// test network namespace, with a private configuration, database and logs under `dir`, so it
// never touches /etc/crowdsec's state nor another test's LAPI. For tests and benchmarks.
//
// cscli() runs cscli against it (inside the namespace, with the private config);
// add_decision() posts an alert carrying one decision of any origin through the API with the
// machine's credentials, which is how decisions of origin `lists` (subscribed blocklists)
// reach a LAPI. The LAPI process (and a firewall bouncer, if started) is killed and the
// directory removed on destruction.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "tests/support/netns/netns.hpp"

namespace meshd::test {

// True when crowdsec and cscli are installed (deploy/install-deps.sh installs them).
bool crowdsec_installed();

class CrowdsecLapi {
 public:
  // Writes the config, registers a machine and starts the LAPI on 127.0.0.1:port of `ns`.
  // Throws std::runtime_error naming the failing step (with the LAPI's log tail).
  CrowdsecLapi(const NetNs& ns, std::string dir, int port = 8080);
  ~CrowdsecLapi();
  CrowdsecLapi(const CrowdsecLapi&) = delete;
  CrowdsecLapi& operator=(const CrowdsecLapi&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& dir() const { return dir_; }
  // `cscli -c <private config> <args>` in the namespace.
  CommandResult cscli(const std::string& args) const;
  // `cscli bouncers add NAME -o raw`: the new bouncer's API key.
  std::string add_bouncer(const std::string& name) const;
  // One ban decision of `origin` (e.g. "lists") via POST /v1/alerts; throws on failure.
  void add_decision(const std::string& origin, const std::string& scope, const std::string& value,
                    const std::string& duration = "1h") const;
  std::string log_tail(int lines = 20) const;

  // crowdsec-firewall-bouncer (nftables mode) in the same namespace, polling every
  // `update_frequency` (e.g. "10s", "1s"). Its sets: table ip crowdsec / ip6 crowdsec6.
  void start_firewall_bouncer(const std::string& api_key, const std::string& update_frequency);
  void stop_firewall_bouncer();

 private:
  const NetNs& ns_;
  std::string dir_;
  int port_;
  std::unique_ptr<BackgroundProcess> lapi_;
  std::unique_ptr<BackgroundProcess> bouncer_;
};

}  // namespace meshd::test
