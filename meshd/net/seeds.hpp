// Seed entries from config (`mesh.peers`): where the dialer looks for peers.
//
//   "host:port"        one peer; host is an IPv4 literal, a DNS name, or "[v6]" in brackets.
//                      A name is resolved on every refresh (all its addresses are tried).
//   "dns:NAME:PORT"    every address NAME resolves to is a peer (a Kubernetes headless
//                      Service lists every DaemonSet pod), re-resolved periodically so
//                      pods that come and go are followed.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "meshd/common/result.hpp"

namespace meshd::net {

struct Seed {
  enum class Kind { host, dns };
  Kind kind = Kind::host;
  std::string host;  // without brackets
  std::uint16_t port = 0;
  std::string text;  // the entry as written, for logs
};

// Errors: `bad_seed` naming the entry and what is wrong (missing port, port not in
// 1..65535, empty host, unterminated bracket).
Result<Seed> parse_seed(std::string_view text);

}  // namespace meshd::net
